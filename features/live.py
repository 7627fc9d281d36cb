"""The live record log: what CRMs post between imports (POST /v1/events, `leadscope events post`): engagement
events, orders and refunds, CRM stage changes, new or updated customer records.

- **Stored first.** A record is one row of `live_records` (features/livelog.py) in the service database (SQLite
  WAL with a full fsync embedded, PostgreSQL in production), idempotent by the client's record id, before anyone
  is told "accepted".
- **Features as of now.** A customer's real-time features are the batch build's own functions
  (features/engineering.py) over the canonical tables as last imported plus the customer's live records, at one
  cut time: so real time and a batch rebuild from the same data agree column by column (tested).
- **Folded into the tables.** `fold` appends the records not yet in the canonical tables (events, transactions,
  stages by their id; customer records as upserts) before every feature build, so the next build, training and
  every batch read see them.

The social-graph view is batch-only: edges are not live records, and a live stage change reaches the graph (a
community's conversion rate) at the next build.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features import contract, engineering
from features.inputs import split_view
from features.livelog import LiveLog, Record, _parsed, _utc, metadata, pushes, records  # noqa: F401 - re-exported
from leadscope.schema import ENTITY, RESERVED_COLUMNS, TS
from leadscope.tables import FeatureMeta, commit_tables, has_table, read_table

TABLE_OF = {"event": "events", "order": "transactions", "stage": "stages", "customer": "customers"}
ID_COLUMN = {"events": "event_id", "transactions": "transaction_id", "stages": "event_id", "customers": ENTITY}
LIVE_VIEWS = (  # recomputed on every live record; customer_graph is batch-only (see above)
    "customer_profile",
    "customer_engagement",
    "customer_engagement_detail",
    "customer_transactions",
    "customer_transactions_detail",
)


class RecordError(ValueError):
    """A live record or attribute that cannot be stored: `field` names it (HTTP 422, CLI exit 2)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _numeric(value: str) -> bool:
    return bool(contract._NUMBER.match(value.strip()))


def parse_attributes(attributes: dict[str, object], meta: FeatureMeta, prefix: str) -> dict[str, object]:
    """Customer attributes read by the kinds of the company's own profile: a column the build typed as a number
    must parse as one (a yes/no answer becomes 0/1), a text column stays text, contact details and click ids are
    kept as text (never features), and an attribute the customers table does not have is refused by name."""
    profile = meta.schema.get("customer_profile", {})
    out: dict[str, object] = {}
    for name, value in attributes.items():
        field = f"{prefix}.{name}"
        if name in (ENTITY, "created_at"):
            raise RecordError(field, f"{field}: set by the record itself, not as an attribute")
        if name in RESERVED_COLUMNS:
            out[name] = None if value is None else str(value)
            continue
        if name not in profile:
            raise RecordError(field, f"{field}: not a customer attribute of this company")
        kind = "number" if profile[name] == "float" else "text"
        yes_no = isinstance(value, str) and value.strip().lower() in contract.TRUE | contract.FALSE
        if kind == "number" and (isinstance(value, bool) or (yes_no and not _numeric(value))):
            kind = "boolean"
        parsed = contract.parse(kind, pd.Series([value], dtype=object))
        if bool(parsed.bad.iloc[0]):
            raise RecordError(field, f"{field}: {parsed.reason}")
        v = parsed.values.iloc[0]
        out[name] = None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v
        if isinstance(out[name], bool | np.bool_):
            out[name] = float(out[name])
    return out


def _frame(rows: list[dict], table: str) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col in ("ts", "created_at"):
        if col in df:
            df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601")
    if table == "transactions":
        df["amount"] = df["amount"].astype(float)
        if "is_refund" in df:
            df["is_refund"] = df["is_refund"].fillna(False).astype(bool)
    return df


def merge(base: dict[str, pd.DataFrame], live: list[Record]) -> dict[str, pd.DataFrame]:
    """The canonical tables with the live records applied: events, orders and stages appended unless their id is
    already there; customer records create a customer or update the attributes they carry (in the order given)."""
    out = dict(base)
    by_table: dict[str, list[dict]] = {}
    for r in live:
        by_table.setdefault(TABLE_OF[r.kind], []).append(r.row | {ENTITY: r.customer_id})
    for table, rows in by_table.items():
        new = _frame(rows, table)
        old = base.get(table)
        if table == "customers":
            out[table] = _upsert(old, new)
            continue
        key = ID_COLUMN[table]
        if old is not None and len(old):
            new = new[~new[key].isin(old[key])]
            new = pd.concat([old, new.reindex(columns=old.columns.union(new.columns, sort=False))], ignore_index=True)
        out[table] = new.drop_duplicates(key, keep="first").reset_index(drop=True)
    return out


def _upsert(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    if old is None or not len(old):
        merged = new.groupby(ENTITY, sort=False).agg("last").reset_index()
        return merged
    old = old.copy()
    pos = {cid: i for i, cid in enumerate(old[ENTITY])}
    added: list[dict] = []
    extra = [c for c in new.columns if c not in old.columns]
    for c in extra:
        old[c] = None
    for row in new.to_dict("records"):
        given = {k: v for k, v in row.items() if not (k == "created_at" and pd.isna(v))}
        if row[ENTITY] in pos:
            i = pos[row[ENTITY]]
            for k, v in given.items():
                if k not in (ENTITY, "created_at"):
                    old.iat[i, old.columns.get_loc(k)] = v
        else:
            pos[row[ENTITY]] = len(old) + len(added)
            added.append(given)
    if added:
        old = pd.concat([old, pd.DataFrame(added).reindex(columns=old.columns)], ignore_index=True)
        old["created_at"] = pd.to_datetime(old["created_at"], utc=True)
    return old


class Base:
    """The canonical tables as last imported, indexed by customer; reloaded when a table file changes (an import
    or a fold). Held in memory per serving process: a customer's history is a dict lookup, not a file scan."""

    TABLES = ("customers", "events", "transactions")

    def __init__(self, raw_dir: Path) -> None:
        self.raw_dir = raw_dir
        self.lock = threading.Lock()
        self.stamp: tuple = ()
        self.tables: dict[str, pd.DataFrame] = {}
        self.index: dict[str, dict[str, np.ndarray]] = {}
        self.event_types: frozenset[str] = frozenset()
        self.paths = [raw_dir / f"{t}.parquet" for t in self.TABLES]

    def _stamp(self) -> tuple:
        """The tables' modification times (0 for a table not imported): one stat each, on every live request."""
        out = []
        for p in self.paths:
            try:
                out.append(os.stat(p).st_mtime_ns)
            except FileNotFoundError:
                out.append(0)
        return tuple(out)

    def fresh(self) -> Base:
        stamp = self._stamp()
        if stamp != self.stamp:
            with self.lock:
                if stamp != self.stamp:
                    tables = {t: read_table(self.raw_dir, t) for t in self.TABLES if has_table(self.raw_dir, t)}
                    self.index = {t: df.groupby(ENTITY, sort=False).indices for t, df in tables.items()}
                    self.tables = tables
                    ev = tables.get("events")
                    self.event_types = (
                        frozenset(ev["event_type"].dropna().astype(str).unique()) if ev is not None else frozenset()
                    )
                    self.stamp = stamp
        return self

    def known(self, ids: list[str]) -> set[str]:
        idx = self.index.get("customers", {})
        return {i for i in ids if i in idx}

    def frames(self, ids: list[str]) -> dict[str, pd.DataFrame]:
        out = {}
        for t, df in self.tables.items():
            idx = self.index[t]
            pos = [idx[i] for i in ids if i in idx]
            out[t] = df.iloc[np.concatenate(pos)] if pos else df.iloc[:0]
        return out


def features_at(
    tables: dict[str, pd.DataFrame],
    at: pd.Timestamp,
    meta: FeatureMeta,
    reference: dict | None = None,
    profile_of: set[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Every live view of these customers at cut time `at` (one row each), by the batch build's functions, in the
    columns and kinds the last build registered. Every row is stamped `at` (the write order of the online store).
    Relative features (RFM quintiles, the high-value tag) rank against `reference`, the population statistics of
    the last build's newest cut, refreshed at each build. The profile does not depend on time: `profile_of` limits
    it to the customers whose attributes changed (None: all)."""
    cust = tables["customers"]
    cuts = pd.DatetimeIndex([at])
    views = {}
    if profile_of is None or profile_of:
        views["customer_profile"] = engineering.profile_features(
            cust if profile_of is None else cust[cust[ENTITY].isin(profile_of)]
        )
    if "customer_engagement" in meta.schema:
        views |= split_view("customer_engagement", engineering.engagement_features(tables["events"], cust, cuts))
    if "customer_transactions" in meta.schema:
        views |= split_view(
            "customer_transactions", engineering.transaction_features(tables["transactions"], cust, cuts, reference)
        )
    return {view: _typed(df, at, meta.schema[view]) for view, df in views.items() if view in meta.schema}


def _typed(df: pd.DataFrame, at: pd.Timestamp, kinds: dict[str, str]) -> pd.DataFrame:
    """The view's rows in its registered columns and kinds (float or text), stamped `at`: one conversion of the
    whole frame, then a column slice each (per-column pandas casts cost more than the features on a few rows)."""
    if df[ENTITY].duplicated().any():
        df = df.drop_duplicates(ENTITY, keep="last")
    block, where = df.to_numpy(dtype=object), {c: j for j, c in enumerate(df.columns)}
    cols: dict[str, np.ndarray] = {ENTITY: block[:, where[ENTITY]].astype(str), TS: np.full(len(df), at)}
    for name, kind in kinds.items():
        if name not in where:
            cols[name] = np.full(
                len(df), np.nan if kind == "float" else None, dtype=float if kind == "float" else object
            )
            continue
        arr = block[:, where[name]]
        if kind == "float":
            try:
                arr = arr.astype(float)
            except (TypeError, ValueError):  # pd.NA and friends: pandas knows them
                arr = df[name].astype("float64").to_numpy()
        cols[name] = arr
    return pd.DataFrame(cols)


# --- fold ---------------------------------------------------------------------------------------------------------


def fold(raw_dir: Path, database_url: str) -> int:
    """Append every live record not yet in the canonical tables to them (all tables in one commit, see
    leadscope.tables.commit_tables), then mark the records folded. Idempotent: a crash between the two leaves
    records that fold again as no-ops (their ids are already there). Returns how many records were folded."""
    if not has_table(raw_dir, "customers"):
        return 0
    log = LiveLog(database_url)
    pending = log.unfolded()
    if not pending:
        return 0
    kinds = {TABLE_OF[r.kind] for _, r in pending}
    base = {t: read_table(raw_dir, t) for t in kinds if has_table(raw_dir, t)}
    merged = merge(base, [r for _, r in pending])
    commit_tables(raw_dir, {t: _like(merged[t], base.get(t)) for t in kinds})
    log.mark_folded([s for s, _ in pending], datetime.now(UTC))
    return len(pending)


def _like(df: pd.DataFrame, old: pd.DataFrame | None) -> pd.DataFrame:
    """The merged table in the column types the imported one had (text stays text, flags stay flags)."""
    if old is None:
        return df
    df = df.copy()
    for c in old.columns:
        if c in df and df[c].dtype != old[c].dtype:
            if df[c].isna().any() and (pd.api.types.is_bool_dtype(old[c]) or pd.api.types.is_integer_dtype(old[c])):
                # a missing flag stays missing (consent is default-deny: never cast None to True)
                df[c] = df[c].astype(object if pd.api.types.is_bool_dtype(old[c]) else "float64")
                continue
            try:
                df[c] = df[c].astype(old[c].dtype)
            except (TypeError, ValueError):
                df[c] = df[c].astype(object)
    return df
