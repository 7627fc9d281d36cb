"""Bring-your-own data: parse each file by the data contract (features/contract.py), check the rules (pandera),
report the rows that break them, and store the rest, all files or none.

A whole file is refused (FileRefused) when it cannot be a table of its kind: empty, unreadable, not UTF-8,
missing a required column, over a size limit, a custom column named like a built-in feature, or every row
rejected. Otherwise every row is accepted or listed in the rejection report with its reason; nothing is dropped
silently. The import validates every file before it writes anything, then swaps the new tables in together
(leadscope/tables.py: commit_tables): a refused import leaves the store as it was. Re-importing is idempotent:
rows are upserted by their key, and a stored column keeps its type.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pandera.pandas as pa

from features import contract
from features.files import ARROW_TEXT, NOT_UTF8, FileRefused, Limits, not_utf8, read
from leadscope.schema import CHANNELS, EDGE_KINDS, ENTITY, RESERVED_COLUMNS, STAGES, TS
from leadscope.tables import commit_tables, has_table, read_table, recover, stage_table

if TYPE_CHECKING:
    import pyarrow

KEYS = {
    "customers": ["customer_id"],
    "transactions": ["transaction_id"],
    "events": ["event_id"],
    "edges": ["src_customer_id", "dst_customer_id", "ts", "kind"],
    "stages": ["event_id"],
    "campaigns": ["customer_id", "ts", "action_id"],
    "labels": ["customer_id", "as_of"],
    "value_labels": ["customer_id", "as_of"],
}
ORDER = ("customers", "transactions", "events", "edges", "stages", "campaigns", "labels")


@dataclass
class Outcome:
    table: str
    read: int
    accepted: int
    rejects: pd.DataFrame  # file, row, column, reason
    kinds: dict[str, str] | None = None  # column → contract kind it was parsed as


def _id(nullable: bool = False) -> pa.Column:
    # no dtype: the contract's parser made it text already (Arrow-backed); pandera checks the rules
    return pa.Column(None, _str_length(1, 256), nullable=nullable)


def _str_length(low: int, high: int) -> pa.Check:
    """pandera's str_length rule as one Arrow kernel on Arrow-backed text. The built-in check goes through pandas'
    `.str.len()`, a masked Int64 copy and masked comparisons: 2 s for each id column of a 10 M-row file, the most
    expensive step of a big import (py-spy, benchmarks/import_csv.py)."""

    def check(s: pd.Series) -> pd.Series:
        if s.dtype != ARROW_TEXT:
            n = s.str.len()
            return (n >= low) & (n <= high)
        import pyarrow.compute as pc

        n = pc.utf8_length(s.array.__arrow_array__())
        ok = pc.fill_null(pc.and_(pc.greater_equal(n, low), pc.less_equal(n, high)), True)
        return pd.Series(ok.to_numpy(zero_copy_only=False), index=s.index)

    return pa.Check(check, name="str_length", error=f"str_length({low}, {high})")


def _vocabulary(values: tuple[str, ...]) -> pa.Column:
    return pa.Column(None, pa.Check.isin(values))


def _flag() -> pa.Column:
    return pa.Column(int, pa.Check.isin([0, 1]))


def schema(table: str) -> pa.DataFrameSchema:
    """The rules per table, checked on the parsed frame; columns not named here pass through (custom attributes)."""
    ts = pa.Column(pd.DatetimeTZDtype(tz="UTC"), nullable=False)
    num = dict(required=False, nullable=True)
    cols: dict[str, dict[str, pa.Column]] = {
        "customers": {"customer_id": _id(), "created_at": ts},
        "transactions": {
            "transaction_id": _id(),
            "customer_id": _id(),
            "ts": ts,
            "amount": pa.Column(float, pa.Check.ge(0)),
            "quantity": pa.Column(float, pa.Check.ge(0), **num),
        },
        "events": {
            "event_id": _id(),
            "customer_id": _id(),
            "ts": ts,
            "channel": _vocabulary(CHANNELS),
            "event_type": _id(),
        },
        "edges": {
            "src_customer_id": _id(),
            "dst_customer_id": _id(),
            "ts": ts,
            "kind": _vocabulary(EDGE_KINDS),
            "weight": pa.Column(float, **num),
        },
        "stages": {
            "event_id": _id(),
            "customer_id": _id(),
            "ts": ts,
            "stage": _vocabulary(STAGES),
            "value": pa.Column(float, pa.Check.ge(0), **num),
        },
        "campaigns": {"customer_id": _id(), "ts": ts, "action_id": _id(), "treated": _flag(), "outcome": _flag()},
        "labels": {"customer_id": _id(), "as_of": ts, "label": _flag()},
        "value_labels": {"customer_id": _id(), "as_of": ts, "label": pa.Column(float, pa.Check.ge(0))},
    }
    return pa.DataFrameSchema(cols[table], strict=False)


# --- validation ------------------------------------------------------------------------------------------------


def kinds_for(
    table: str, df: pd.DataFrame, pinned: dict[str, str] | None = None, stored: pd.DataFrame | None = None
) -> dict[str, str]:
    """Each column's contract kind: pinned by the user (--schema), declared by DATA.md, fixed by the stored table,
    or (custom attributes of customers) inferred once over the whole column."""
    pinned, declared = pinned or {}, contract.COLUMNS[table]
    out = {}
    for col in df.columns:
        stored_kind = contract.kind_of_stored(stored[col].dtype) if stored is not None and col in stored else None
        kind = pinned.get(col) or declared.get(col) or stored_kind
        # inferred only where nothing else decides: a pass over the whole column
        out[col] = kind or (contract.infer_kind(df[col]) if table == "customers" else "text")
    return out


def validate(
    table: str,
    df: pd.DataFrame,
    *,
    file: str,
    known_customers: set[str] | Sequence[str] | pyarrow.Array | pyarrow.ChunkedArray,
    kinds: dict[str, str] | None = None,
    on_parsed: Callable[[pd.DataFrame], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted rows in their stored types, rejection report). Row numbers are 1-based data rows (the header is
    not counted). `on_parsed` sees the parsed frame before the rules are checked (the import starts writing it
    then: when no row is rejected, it is the accepted frame)."""
    df = df.reset_index(drop=True)
    kinds = kinds or kinds_for(table, df)
    issues: list[tuple[int, str, str]] = [(i, "*", NOT_UTF8) for i in df.index[not_utf8(df)]]
    # columns parse side by side, then the key and reference checks run beside pandera's: Arrow's kernels and
    # DuckDB release the GIL, and each Arrow kernel call uses one core
    with ThreadPoolExecutor(max_workers=min(len(df.columns), os.cpu_count() or 1) or 1) as pool:
        parsed_columns = dict(
            zip(df.columns, pool.map(lambda c: contract.parse(kinds[c], df[c]), df.columns), strict=True)
        )
        for col, parsed in parsed_columns.items():
            issues += [(i, col, parsed.reason) for i in df.index[parsed.bad.to_numpy(bool)]]
        # one frame from the parsed columns, not one column at a time (each assignment copied a datetime column)
        work = pd.DataFrame({c: p.values for c, p in parsed_columns.items()}, index=df.index, copy=False)
        if on_parsed is not None:
            on_parsed(work)
        keyed = pool.submit(_key_and_reference_issues, table, work, known_customers)
        issues += _schema_issues(table, work)
        issues += keyed.result()
    rejects = pd.DataFrame(issues, columns=["index", "column", "reason"]).drop_duplicates(["index", "column"])
    garbled = set(rejects.loc[rejects["reason"] == NOT_UTF8, "index"])  # its other errors are consequences
    rejects = rejects[~rejects["index"].isin(garbled) | (rejects["reason"] == NOT_UTF8)]
    accepted = work[~work.index.isin(rejects["index"])] if len(rejects) else work
    report = rejects.assign(file=file, row=rejects["index"] + 1)[["file", "row", "column", "reason"]]
    return accepted.reset_index(drop=True), report.sort_values(["row", "column"], ignore_index=True)


def _key_and_reference_issues(
    table: str, work: pd.DataFrame, known_customers: set[str] | Sequence[str] | pyarrow.Array | pyarrow.ChunkedArray
) -> list[tuple[int, str, str]]:
    """Rows whose key repeats later in the file (complete keys only; the later row is kept) and rows naming a
    customer that is neither stored nor in this import's customers file.

    Both are counted first, in one multi-threaded DuckDB pass over the Arrow columns: a distinct count of the key's
    hashes and a left join per reference column. Most files have neither problem, and then the per-row searches are
    skipped. Measured on 10 M transactions naming 1 M customers: 2.1 s (3.8 s of CPU), against 2.4-2.8 s (4.8-5.5)
    for the two queries side by side and 10 s for Arrow's single-threaded count_distinct and is_in. Two keys
    sharing a hash only send the file to the exact search, so no answer depends on the hash."""
    import pyarrow

    keys = KEYS[table]
    refs = [c for c in ("customer_id", "src_customer_id", "dst_customer_id") if c in work and table != "customers"]
    complete = work[keys].notna().all(axis=1)
    one_key = len(keys) == 1 and work[keys[0]].dtype == ARROW_TEXT
    columns = {"i": np.arange(len(work))} | ({"k": _text_array(work[keys[0]])} if one_key else {})
    columns |= {f"r{n}": _text_array(work[col]) for n, col in enumerate(refs)}
    con = _duckdb()
    con.register("t", pyarrow.table(columns))
    if refs:
        con.register("known", pyarrow.table({"c": _text_array(known_customers)}))
    joins = "".join(f" LEFT JOIN kn k{n} ON t.r{n} = k{n}.c" for n in range(len(refs)))
    unknown = [f"t.r{n} IS NOT NULL AND k{n}.c IS NULL" for n in range(len(refs))]
    selects = ["count(DISTINCT hash(t.k)) FILTER (WHERE t.k IS NOT NULL)"] if one_key else []
    selects += [f"count(*) FILTER (WHERE {u})" for u in unknown]
    with_known = "WITH kn AS (SELECT DISTINCT c FROM known) " if refs else ""
    issues: list[tuple[int, str, str]] = []
    found = con.execute(f"{with_known}SELECT {', '.join(selects)} FROM t{joins}").fetchone() if selects else ()
    distinct = found[0] if one_key else None
    for n, col in enumerate(refs):
        if found[n + one_key]:
            rows = con.execute(f"{with_known}SELECT t.i FROM t{joins} WHERE {unknown[n]} ORDER BY t.i").fetchnumpy()
            issues += [(int(i), col, "unknown customer_id (not in customers)") for i in rows["i"]]
    if distinct is None or distinct != int(complete.sum()):
        key = "+".join(keys)
        dup = work.duplicated(keys, keep="last") & complete
        issues += [(i, key, "duplicate key in this file; the later row is kept") for i in work.index[dup]]
    return issues


def _duckdb():  # noqa: ANN202 - duckdb connection
    import duckdb

    return duckdb.connect(config={"threads": os.cpu_count() or 1})


def _text_array(
    values: pd.Series | set[str] | Sequence[str] | pyarrow.Array | pyarrow.ChunkedArray,
) -> pyarrow.ChunkedArray:
    """Values as one Arrow large_string array, without a Python object per value where they are Arrow already."""
    import pyarrow

    if isinstance(values, pyarrow.Array | pyarrow.ChunkedArray):
        arr = values
    elif isinstance(values, pd.Series) and values.dtype == ARROW_TEXT:
        arr = values.array.__arrow_array__()
    elif isinstance(values, pd.Series):
        text = values.astype(object).where(values.notna(), None)
        try:
            arr = pyarrow.array(text.to_numpy(object), pyarrow.large_string(), from_pandas=True)
        except (UnicodeEncodeError, pyarrow.ArrowTypeError, pyarrow.ArrowInvalid):
            # text that was not UTF-8 (kept as surrogates) or not text: its rows are reported as such anyway
            text = text.map(
                lambda v: str(v).encode("utf-8", "surrogateescape").decode("utf-8", "replace"), na_action="ignore"
            )
            arr = pyarrow.array(text.to_numpy(object), pyarrow.large_string(), from_pandas=True)
    else:
        arr = pyarrow.array(list(values), pyarrow.large_string())
    arr = arr.cast(pyarrow.large_string())
    return arr if isinstance(arr, pyarrow.ChunkedArray) else pyarrow.chunked_array([arr])


def _schema_issues(table: str, work: pd.DataFrame) -> list[tuple[int, str, str]]:
    """Lazy pandera validation, repeated without the failed rows: a column whose type check failed is not checked
    further in that pass, so its other bad values only show in the next one."""
    issues: list[tuple[int, str, str]] = []
    rows = work
    for _ in range(len(work.columns) + 1):
        try:
            schema(table).validate(rows, lazy=True, inplace=True)  # checks only: no copy of the frame
            return issues
        except pa.errors.SchemaErrors as err:
            fc = err.failure_cases.dropna(subset=["index"])
            if fc.empty:
                raise
            issues += [(int(r.index), str(r.column), _reason(str(r.check))) for r in fc.itertuples()]
            rows = rows.drop(index=fc["index"].astype(int).unique())
    return issues


def reserved_names() -> frozenset[str]:
    """Column names a custom attribute may not take: every built-in feature, the entity and timestamp columns."""
    from features.names import BUILTIN_FEATURE_COLUMNS

    return BUILTIN_FEATURE_COLUMNS | {ENTITY, TS}


def _check_custom_names(name: str, df: pd.DataFrame, reserved: frozenset[str]) -> None:
    custom = [c for c in df.columns if c not in contract.COLUMNS["customers"] and c not in RESERVED_COLUMNS]
    taken = sorted(set(custom) & reserved)
    if taken:
        raise FileRefused(
            f"{name}: column {taken[0]} is the name of a built-in feature; rename it (e.g. crm_{taken[0]}) and import "
            "again"
        )


# --- the import ------------------------------------------------------------------------------------------------


def upsert(stored: pd.DataFrame | None, accepted: pd.DataFrame, table: str) -> pd.DataFrame:
    """Stored rows updated by key with the accepted ones; stored columns keep their dtype where the new values fit."""
    if stored is None:
        return accepted
    new = accepted.copy()
    for col in set(new.columns) & set(stored.columns):
        if new[col].dtype != stored[col].dtype and not new[col].isna().any():
            try:
                new[col] = new[col].astype(stored[col].dtype)
            except (TypeError, ValueError):
                pass
    return pd.concat([stored, new], ignore_index=True).drop_duplicates(KEYS[table], keep="last", ignore_index=True)


def import_files(
    raw_dir: Path,
    files: dict[str, Path],
    *,
    limits: Limits | None = None,
    pinned: dict[str, dict[str, str]] | None = None,
) -> list[Outcome]:
    """Read and validate every file (any refusal stops before anything is written), then commit them together."""
    limits = limits or Limits()
    recover(raw_dir)
    with _arrow_pool():
        frames = {t: read(files[t], t, limits) for t in ORDER if t in files}
        if "customers" in frames:
            _check_custom_names(files["customers"].name, frames["customers"], reserved_names())
        return _validate_and_commit(raw_dir, files, frames, pinned)


@contextlib.contextmanager
def _arrow_pool() -> Iterator[None]:
    """Arrow's buffers from the system allocator while importing: measured on 10 M rows, mimalloc (the default)
    and jemalloc returned and re-faulted pages between kernels, 2 s more of system time (benchmarks/import_csv.py)."""
    import pyarrow as pa

    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)


def _validate_and_commit(
    raw_dir: Path, files: dict[str, Path], frames: dict[str, pd.DataFrame], pinned: dict[str, dict[str, str]] | None
) -> list[Outcome]:
    import pyarrow

    # the known customer ids as Arrow arrays (stored, then this import's accepted ones), never a Python set:
    # a million ids as Python strings cost a second to build and another to hand to the reference check
    known = (
        [_text_array(read_table(raw_dir, "customers", columns=[ENTITY])[ENTITY])]
        if has_table(raw_dir, "customers")
        else []
    )
    results: list[Outcome] = []
    tables: dict[str, pd.DataFrame | Path] = {}
    staged: list[Future] = []
    committing = False
    try:
        with ThreadPoolExecutor(max_workers=1) as writer:
            for table, df in frames.items():
                stored = read_table(raw_dir, table) if has_table(raw_dir, table) else None
                kinds = kinds_for(table, df, (pinned or {}).get(table), stored)
                ids = pyarrow.chunked_array([c for k in known for c in k.chunks], pyarrow.large_string())
                # a new table is written while its rules are checked (one core writes, the checks use the other):
                # the staged file is the table when no row is rejected, else the accepted rows are written after
                staging: list[Future] = []

                def speculate(work: pd.DataFrame, table: str = table, staging: list[Future] = staging) -> None:
                    staging.append(writer.submit(stage_table, raw_dir, table, work))

                accepted, rejects = validate(
                    table,
                    df,
                    file=files[table].name,
                    known_customers=ids,
                    kinds=kinds,
                    on_parsed=speculate if stored is None else None,
                )
                staged += staging
                if len(df) and accepted.empty:
                    first = rejects.iloc[0]
                    raise FileRefused(
                        f"{files[table].name}: every row was rejected, e.g. row {first['row']}, column "
                        f"{first['column']}: {first['reason']}"
                    )
                if table == "customers":
                    known.append(_text_array(accepted[ENTITY]))
                clean = stored is None and rejects.empty and staging
                tables[table] = staging[0] if clean else upsert(stored, accepted, table)
                results.append(Outcome(table, len(df), len(accepted), rejects, kinds))
        # (leaving the block waited for every staged write)
        tables = {t: v.result() if isinstance(v, Future) else v for t, v in tables.items()}
        committing = True
        commit_tables(raw_dir, tables)
    finally:
        # staged files not committed (rows were rejected, or the import was refused) are removed; once the commit
        # started, the ones it names are its own (renamed into place, or finished by `recover` after a crash)
        used = {v for v in tables.values() if isinstance(v, Path)} if committing else set()
        for f in staged:
            if f.exception() is None and f.result() not in used:
                f.result().unlink(missing_ok=True)
    return results


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
