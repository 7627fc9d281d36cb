"""What the views read of the raw tables: optional tables with only the columns the views use, the graph view's
inputs, and how a view splits into its summary and detail parts (shared by the build, its graph workers, live
records and inline leads)."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from features import engineering
from features.distributed import READS
from graphs.features import GRAPH_CUSTOMER_COLUMNS, HIGH_INTENT
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import has_table, read_table, table_path


def split_view(name: str, df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Summary features stay in `name`; the long tail of windowed counts goes to `<name>_detail`."""
    core = engineering.CORE.get(name)
    if core is None:
        return {name: df}
    rest = [c for c in df.columns if c not in core and c not in (ENTITY, TS)]
    return {name: df[[ENTITY, TS, *core]], f"{name}_detail": df[[ENTITY, TS, *rest]]}


def first_stage(stages: pd.DataFrame, stage: str) -> pd.Series:
    """When each customer first reached a CRM stage."""
    s = stages[stages["stage"] == stage]
    first = s.assign(ts=pd.to_datetime(s["ts"], utc=True)).groupby(ENTITY, observed=True)["ts"].min()
    return first.set_axis(first.index.astype(object))  # ids read as categories: plain ids again


EMPTY = {
    "transactions": {"transaction_id": str, "customer_id": str, "ts": "datetime64[ns, UTC]", "amount": float},
    "events": {"event_id": str, "customer_id": str, "ts": "datetime64[ns, UTC]", "channel": str, "event_type": str},
    "stages": {"event_id": str, "customer_id": str, "ts": "datetime64[ns, UTC]", "stage": str},
}


def optional_table(settings: Settings, name: str, stages: tuple[str, ...] = ()) -> pd.DataFrame:
    """An optional table, or an empty one with its required columns when the company has none. Of the event
    tables only the columns the views read, their ids and types as categories: 40 M events of a 1 M-customer
    company are then codes, not 40 M Python strings per text column. `stages`: of the stages table only the rows
    of these stages (and its ids as categories)."""
    if stages and has_table(settings.raw_dir, name):
        path = table_path(settings.raw_dir, name)
        return pd.read_parquet(
            path, columns=[ENTITY, "ts", "stage"], filters=[("stage", "in", list(stages))], read_dictionary=[ENTITY]
        )
    if has_table(settings.raw_dir, name):
        if name not in READS:
            return read_table(settings.raw_dir, name)
        path = table_path(settings.raw_dir, name)
        cols = [c for c in READS[name] if c in pq.read_schema(path).names]
        text = [c for c in cols if c in (ENTITY, "event_type", "category")]
        return read_table(settings.raw_dir, name, columns=cols, read_dictionary=text)
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in EMPTY[name].items()})


def graph_inputs(settings: Settings, tables: dict[str, pd.DataFrame]) -> dict[str, object]:
    """graph_features' arguments but the cut times (the events: only the high-intent ones it reads). The edges'
    ids and kinds come as categories: codes, not a Python string per end of every edge."""
    stages = optional_table(settings, "stages", stages=("won", "churned"))
    events = tables["events"]
    ids = ["src_customer_id", "dst_customer_id", "kind"]
    return {
        "edges": read_table(settings.raw_dir, "edges", read_dictionary=ids),
        "customers": tables["customers"],
        "won_at": first_stage(stages, "won"),
        "churned_at": first_stage(stages, "churned"),
        "transactions": tables["transactions"],
        "events": events[events["event_type"].isin(HIGH_INTENT)][[ENTITY, "ts", "event_type"]],
        "seed": settings.seed,
    }


def graph_tables(settings: Settings) -> dict[str, pd.DataFrame]:
    """What the graph view reads of the raw tables and no more: four columns of the customers, the orders'
    columns the views read, the high-intent events alone (graph_inputs takes them)."""
    have = pq.read_schema(table_path(settings.raw_dir, "customers")).names
    cols = [c for c in GRAPH_CUSTOMER_COLUMNS if c in have]
    tables = {
        "customers": read_table(settings.raw_dir, "customers", columns=cols, read_dictionary=[ENTITY]),
        "transactions": optional_table(settings, "transactions"),
    }
    if has_table(settings.raw_dir, "events"):
        path = table_path(settings.raw_dir, "events")
        filters = [("event_type", "in", list(HIGH_INTENT))]
        tables["events"] = pd.read_parquet(
            path, columns=[ENTITY, "ts", "event_type"], filters=filters, read_dictionary=[ENTITY, "event_type"]
        )
    else:
        tables["events"] = optional_table(settings, "events")
    return tables
