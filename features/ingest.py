"""Bring-your-own data: validate canonical tables row by row (pandera), store what is valid, report the rest.

A whole file is refused (FileRefused) when it cannot be a table of its kind: empty, unreadable, not UTF-8,
or missing a required column. Otherwise every row is either accepted or listed in the rejection report with
its reason; nothing is dropped silently. Re-importing a file is idempotent: rows are upserted by their key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from leadscope.schema import CHANNELS, EDGE_KINDS, ENTITY, REQUIRED, STAGES

KEYS = {
    "customers": ["customer_id"],
    "transactions": ["transaction_id"],
    "events": ["event_id"],
    "edges": ["src_customer_id", "dst_customer_id", "ts", "kind"],
    "stages": ["event_id"],
    "campaigns": ["customer_id", "ts", "action_id"],
    "labels": ["customer_id", "as_of"],
}
TIMESTAMPS = {"customers": ["created_at"], "labels": ["as_of"]}  # every other table: ts
ORDER = ("customers", "transactions", "events", "edges", "stages", "campaigns", "labels")
NOT_UTF8 = "not valid UTF-8"


class FileRefused(ValueError):
    """The file as a whole cannot be imported; the message says why."""


@dataclass
class Outcome:
    table: str
    read: int
    accepted: int
    rejects: pd.DataFrame  # file, row, column, reason


def _id(nullable: bool = False) -> pa.Column:
    return pa.Column(str, pa.Check.str_length(1, 256), nullable=nullable, coerce=True)


def _flag() -> pa.Column:
    return pa.Column(float, pa.Check.isin([0, 1]), coerce=True)


def schema(table: str) -> pa.DataFrameSchema:
    """Types and rules per table; columns not named here pass through (custom attributes)."""
    ts = pa.Column(pd.DatetimeTZDtype(tz="UTC"), nullable=False)
    num = dict(coerce=True, required=False, nullable=True)
    cols: dict[str, dict[str, pa.Column]] = {
        "customers": {"customer_id": _id(), "created_at": ts},
        "transactions": {
            "transaction_id": _id(),
            "customer_id": _id(),
            "ts": ts,
            "amount": pa.Column(float, pa.Check.ge(0), coerce=True),
            "quantity": pa.Column(float, pa.Check.ge(0), **num),
        },
        "events": {
            "event_id": _id(),
            "customer_id": _id(),
            "ts": ts,
            "channel": pa.Column(str, pa.Check.isin(CHANNELS)),
            "event_type": _id(),
        },
        "edges": {
            "src_customer_id": _id(),
            "dst_customer_id": _id(),
            "ts": ts,
            "kind": pa.Column(str, pa.Check.isin(EDGE_KINDS)),
            "weight": pa.Column(float, **num),
        },
        "stages": {
            "event_id": _id(),
            "customer_id": _id(),
            "ts": ts,
            "stage": pa.Column(str, pa.Check.isin(STAGES)),
            "value": pa.Column(float, pa.Check.ge(0), **num),
        },
        "campaigns": {"customer_id": _id(), "ts": ts, "action_id": _id(), "treated": _flag(), "outcome": _flag()},
        "labels": {"customer_id": _id(), "as_of": ts, "label": _flag()},
    }
    return pa.DataFrameSchema(cols[table], strict=False)


def read(path: Path, table: str) -> pd.DataFrame:
    """CSV (UTF-8) or parquet → strings/values as written; refuses files that are not this table at all."""
    if not path.exists():
        raise FileRefused(f"{path.name}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                encoding="utf-8",
                encoding_errors="surrogateescape",
            )
    except pd.errors.EmptyDataError:
        raise FileRefused(f"{path.name}: the file is empty") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure means the file is unreadable as a table
        raise FileRefused(f"{path.name}: cannot be read as CSV or parquet ({type(exc).__name__})") from None
    if df.empty:
        raise FileRefused(f"{path.name}: the file has no rows")
    df.columns = [str(c).strip() for c in df.columns]
    if any(("\x00" in c) or any("\udc80" <= ch <= "\udcff" for ch in c) for c in df.columns):
        raise FileRefused(
            f"{path.name}: the header is not UTF-8 text (UTF-16 or another encoding?); re-export the file as UTF-8"
        )
    missing = [c for c in REQUIRED[table] if c not in df.columns]
    if missing:
        raise FileRefused(f"{path.name}: missing required column(s) {', '.join(missing)} for table '{table}'")
    bad = _not_utf8(df)
    if bad.mean() > 0.5:
        raise FileRefused(f"{path.name}: most rows are not UTF-8 text; re-export the file as UTF-8")
    return df


def validate(
    table: str, df: pd.DataFrame, *, file: str, known_customers: set[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted rows, rejection report). Row numbers are 1-based data rows (the header is not counted)."""
    df = df.reset_index(drop=True)
    issues: list[tuple[int, str, str]] = [(i, "*", NOT_UTF8) for i in df.index[_not_utf8(df)]]
    work = df.copy()
    for col in TIMESTAMPS.get(table, ["ts"]):
        parsed = pd.to_datetime(work[col], errors="coerce", utc=True, format="ISO8601")
        issues += [(i, col, "not an ISO 8601 timestamp") for i in work.index[parsed.isna() & work[col].notna()]]
        work[col] = parsed
    issues += _schema_issues(table, work)
    refs = [c for c in ("customer_id", "src_customer_id", "dst_customer_id") if c in work and table != "customers"]
    for col in refs:
        unknown = work[col].notna() & ~work[col].astype(str).isin(known_customers)
        issues += [(i, col, "unknown customer_id (not in customers)") for i in work.index[unknown]]
    dup = work.duplicated(KEYS[table], keep="last") & work[KEYS[table]].notna().all(axis=1)
    issues += [(i, "+".join(KEYS[table]), "duplicate key in this file; the later row is kept") for i in work.index[dup]]
    rejects = pd.DataFrame(issues, columns=["index", "column", "reason"]).drop_duplicates(["index", "column"])
    garbled = set(rejects.loc[rejects["reason"] == NOT_UTF8, "index"])  # its other errors are consequences
    rejects = rejects[~rejects["index"].isin(garbled) | (rejects["reason"] == NOT_UTF8)]
    ok = ~work.index.isin(rejects["index"])
    accepted = schema(table).validate(work[ok].copy())
    report = rejects.assign(file=file, row=rejects["index"] + 1)[["file", "row", "column", "reason"]]
    return accepted.reset_index(drop=True), report.sort_values(["row", "column"], ignore_index=True)


def _schema_issues(table: str, work: pd.DataFrame) -> list[tuple[int, str, str]]:
    """Lazy pandera validation, repeated without the failed rows: a column whose type coercion failed is
    not checked further in that pass, so its other bad values only show in the next one."""
    issues: list[tuple[int, str, str]] = []
    rows = work
    for _ in range(len(work.columns) + 1):
        try:
            schema(table).validate(rows, lazy=True)
            return issues
        except pa.errors.SchemaErrors as err:
            fc = err.failure_cases.dropna(subset=["index"])
            if fc.empty:
                raise
            issues += [(int(r.index), str(r.column), _reason(str(r.check))) for r in fc.itertuples()]
            rows = rows.drop(index=fc["index"].astype(int).unique())
    return issues


def store_table(raw_dir: Path, table: str, accepted: pd.DataFrame) -> int:
    """Upsert by key into <raw_dir>/<table>.parquet (atomic replace); returns the table's row count."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    path = raw_dir / f"{table}.parquet"
    old = pd.read_parquet(path) if path.exists() else accepted.iloc[:0]
    merged = pd.concat([old, accepted], ignore_index=True).drop_duplicates(KEYS[table], keep="last")
    tmp = path.with_suffix(".parquet.tmp")
    merged.to_parquet(tmp, index=False)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return len(merged)


def import_files(raw_dir: Path, files: dict[str, Path]) -> list[Outcome]:
    """Read every file first (any refusal stops before anything is written), then validate and store."""
    frames = {t: read(files[t], t) for t in ORDER if t in files}
    known: set[str] = set()
    if (raw_dir / "customers.parquet").exists():
        known |= set(pd.read_parquet(raw_dir / "customers.parquet", columns=[ENTITY])[ENTITY].astype(str))
    results = []
    for table, df in frames.items():
        accepted, rejects = validate(table, df, file=files[table].name, known_customers=known)
        if table == "customers":
            known |= set(accepted[ENTITY].astype(str))
        store_table(raw_dir, table, accepted)
        results.append(Outcome(table, len(df), len(accepted), rejects))
    return results


_SURROGATE = re.compile(r"[\udc80-\udcff]")


def _not_utf8(df: pd.DataFrame) -> pd.Series:
    """Rows holding bytes that were not UTF-8 (read back as lone surrogates)."""
    text = df.select_dtypes(include="object")
    if text.empty:
        return pd.Series(False, index=df.index)
    # object columns may hold flags (True/False/None) rather than text: only strings can carry bad bytes
    return text.apply(lambda s: s.map(lambda v: isinstance(v, str) and bool(_SURROGATE.search(v)))).any(axis=1)


def _reason(check: str) -> str:
    """A readable reason from a pandera check name, without echoing the value (it may be personal data)."""
    if check.startswith("coerce_dtype") or check.startswith("dtype"):
        kind = check.split("(", 1)[-1].rstrip(")").strip("'")
        return f"wrong type: expected {'a number' if 'float' in kind or 'int' in kind else kind}"
    if check == "not_nullable":
        return "missing value"
    if check.startswith("greater_than_or_equal_to"):
        return "must not be negative"
    if check.startswith("isin"):
        return f"not an allowed value: {check.removeprefix('isin')}"
    if check.startswith("str_length"):
        return "empty or too long"
    return check
