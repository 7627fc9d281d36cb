"""The canonical tables on disk and the feature build's metadata: the one reader and writer of both.

Raw tables live as `<raw_dir>/<name>.parquet` (docs/DATA.md); the feature build writes `meta.json` (time range and
cut times) and `schema.json` (columns and kinds per feature view) beside its sources. Everything else reads them
through here, so their layout is decided in one place.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

META_FILE, SCHEMA_FILE = "meta.json", "schema.json"


def table_path(raw_dir: Path, name: str) -> Path:
    return raw_dir / f"{name}.parquet"


def has_table(raw_dir: Path, name: str) -> bool:
    return table_path(raw_dir, name).exists()


def read_table(
    raw_dir: Path, name: str, columns: list[str] | None = None, read_dictionary: list[str] | None = None
) -> pd.DataFrame:
    """A canonical table; FileNotFoundError naming it when it was never imported or generated. The columns in
    `read_dictionary` come as pandas categories."""
    path = table_path(raw_dir, name)
    if not path.exists():
        raise FileNotFoundError(f"missing input table '{name}' at {path}")
    if read_dictionary:
        return pd.read_parquet(path, columns=columns, read_dictionary=read_dictionary)
    return pd.read_parquet(path, columns=columns)


def read_optional(raw_dir: Path, name: str) -> pd.DataFrame:
    """A canonical table, or an empty frame when the company has none (optional tables add features)."""
    return read_table(raw_dir, name) if has_table(raw_dir, name) else pd.DataFrame()


# OWASP CSV injection: a cell starting with one of these is read as a formula by spreadsheet programs. Written here
# rather than with defusedcsv: that library leaves tab and carriage return out and rewrites '|' inside cells.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """A text cell a spreadsheet shows as text: one starting with a formula character gets a leading quote.
    Numbers stay numbers (a negative amount is not a formula)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell passed through safe_cell (numeric columns untouched)."""
    text = [c for c in df.columns if df[c].dtype == object or pd.api.types.is_string_dtype(df[c])]
    if not text:
        return df
    out = df.copy()
    for c in text:
        out[c] = out[c].map(safe_cell, na_action="ignore")
    out.columns = [safe_cell(str(c)) for c in out.columns]
    return out


JOURNAL = ".commit.json"


def stage_table(raw_dir: Path, name: str, df: pd.DataFrame) -> Path:
    """The table written beside the store under a hidden name, for a later commit_tables; a staged file that is
    never committed is removed by the next `recover`."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    tmp = raw_dir / f".{name}.{uuid.uuid4().hex}.parquet"
    _write_table(df, tmp)
    return tmp


def commit_tables(raw_dir: Path, tables: dict[str, pd.DataFrame | Path]) -> None:
    """Replace several tables together: each is written (or was staged by stage_table) and fsynced beside the
    store, a journal names them all, then each is renamed into place. A crash before the journal leaves the old
    tables; after it, `recover` ends the renames, so the next reader sees all of the new tables or none."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    staged = {}
    for name, df in tables.items():
        tmp = df if isinstance(df, Path) else stage_table(raw_dir, name, df)
        _fsync(tmp)
        staged[tmp.name] = table_path(raw_dir, name).name
    journal = raw_dir / JOURNAL
    tmp = journal.with_suffix(".tmp")
    tmp.write_text(json.dumps(staged))
    _fsync(tmp)
    os.replace(tmp, journal)
    recover(raw_dir)


def _write_table(df: pd.DataFrame, path: Path) -> None:
    """Parquet as every reader expects it: text columns (Arrow-backed while importing) read back as plain Python
    strings, like the generator's tables, not as pandas' string dtype."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = json.loads(table.schema.metadata[b"pandas"])
    for col in meta["columns"]:
        if col["numpy_type"] == "string":  # pandas' string dtype: read back as object, like generated tables
            col["numpy_type"], col["pandas_type"] = "object", "unicode"
    # min/max statistics for every column but text: string statistics cost a quarter of the write of a 10 M-row
    # table (benchmarks/import_csv.py) and no reader filters on a text column's range
    stats = [f.name for f in table.schema if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(meta).encode()}), path, write_statistics=stats)


def recover(raw_dir: Path) -> None:
    """Finish a commit that a crash interrupted after its journal was written (idempotent)."""
    journal = raw_dir / JOURNAL
    if not journal.exists():
        return
    for src, dst in json.loads(journal.read_text()).items():
        if (raw_dir / src).exists():
            os.replace(raw_dir / src, raw_dir / dst)
    _fsync_dir(raw_dir)
    journal.unlink()
    for leftover in raw_dir.glob(".*.parquet"):  # staged by a commit that died before its journal
        leftover.unlink()


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_frame(df: pd.DataFrame, path: Path) -> None:
    """A user-facing output file, parquet or CSV by its suffix (the CLI checks the suffix before any work).
    CSV is safe to open in a spreadsheet (see safe_cell); parquet keeps the values as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        # CRLF rows (RFC 4180): a cell holding a carriage return is then quoted, not split into two rows
        spreadsheet_safe(df).to_csv(path, index=False, lineterminator="\r\n")


def column_kinds(df: pd.DataFrame, skip: tuple[str, ...]) -> dict[str, str]:
    """Feature column → 'string' or 'float', the two kinds the Feast views are declared with."""
    return {c: ("string" if pd.api.types.is_string_dtype(df[c]) else "float") for c in df.columns if c not in skip}


@dataclass(frozen=True)
class FeatureMeta:
    """What a feature build covered: the data's first day, its 'now' (end), the cut times, and per view its
    feature columns with their kind."""

    start: pd.Timestamp
    end: pd.Timestamp
    cuts: tuple[pd.Timestamp, ...]
    schema: dict[str, dict[str, str]] = field(default_factory=dict)

    def has_view(self, view: str) -> bool:
        return view in self.schema


def has_features(feature_dir: Path) -> bool:
    return (feature_dir / META_FILE).exists() and (feature_dir / SCHEMA_FILE).exists()


def write_feature_meta(feature_dir: Path, meta: FeatureMeta) -> None:
    feature_dir.mkdir(parents=True, exist_ok=True)
    (feature_dir / SCHEMA_FILE).write_text(json.dumps(meta.schema, indent=1))
    body = {"start": meta.start.isoformat(), "end": meta.end.isoformat(), "cuts": [c.isoformat() for c in meta.cuts]}
    (feature_dir / META_FILE).write_text(json.dumps(body))


def read_feature_meta(feature_dir: Path) -> FeatureMeta:
    """The last feature build's metadata; FileNotFoundError when features were never built."""
    if not has_features(feature_dir):
        raise FileNotFoundError(f"no features built in {feature_dir}: run `leadscope features build`")
    body = json.loads((feature_dir / META_FILE).read_text())
    return FeatureMeta(
        start=pd.Timestamp(body["start"]),
        end=pd.Timestamp(body["end"]),
        cuts=tuple(pd.Timestamp(c) for c in body["cuts"]),
        schema=json.loads((feature_dir / SCHEMA_FILE).read_text()),
    )
