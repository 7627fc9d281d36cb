"""The feature build, the one entry point: raw tables → every feature view's offline source (graph features
included, computed by graphs/' pure functions) → metadata → Feast registry → online store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from features import engineering
from features import store as feature_store
from graphs.features import graph_features
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import FeatureMeta, column_kinds, has_table, read_table, write_feature_meta

GRAPH_VIEW = "customer_graph"
Progress = Callable[[str], None]


@dataclass
class BuildReport:
    """Rows written per feature view; `skipped` says why a view was not built (a table the company lacks)."""

    rows: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def data_end(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The dataset's 'now': the day after the newest timestamp anywhere."""
    newest = max(
        pd.to_datetime(df[c], utc=True).max()
        for df, c in ((tables["customers"], "created_at"), (tables["events"], "ts"), (tables["transactions"], "ts"))
    )
    return newest.floor("D") + pd.Timedelta(days=1)


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
    return s.assign(ts=pd.to_datetime(s["ts"], utc=True)).groupby(ENTITY)["ts"].min()


def graph_view(settings: Settings, tables: dict[str, pd.DataFrame], cuts: pd.DatetimeIndex) -> pd.DataFrame:
    """The social-graph view at the same cut times as every other view."""
    stages = read_table(settings.raw_dir, "stages")
    return graph_features(
        edges=read_table(settings.raw_dir, "edges"),
        customers=tables["customers"],
        won_at=first_stage(stages, "won"),
        churned_at=first_stage(stages, "churned"),
        transactions=tables["transactions"],
        events=tables["events"],
        cuts=cuts,
        seed=settings.seed,
    )


def write_sources(settings: Settings, progress: Progress = lambda _: None) -> BuildReport:
    """Compute every feature view's source, write it and the build's metadata (once); returns rows per view."""
    tables = {t: read_table(settings.raw_dir, t) for t in ("customers", "transactions", "events")}
    cust = tables["customers"]
    end = data_end(tables)
    start = pd.to_datetime(cust["created_at"], utc=True).min().floor("D")
    cuts = engineering.cut_times(start=start, end=end, cadence_days=settings.feature_cadence_days)
    steps: dict[str, Callable[[], pd.DataFrame]] = {
        "customer_profile": lambda: engineering.profile_features(cust),
        "customer_transactions": lambda: engineering.transaction_features(tables["transactions"], cust, cuts),
        "customer_engagement": lambda: engineering.engagement_features(tables["events"], cust, cuts),
    }
    report = BuildReport()
    if all(has_table(settings.raw_dir, t) for t in ("edges", "stages")):
        steps[GRAPH_VIEW] = lambda: graph_view(settings, tables, cuts)
    else:
        report.skipped[GRAPH_VIEW] = "needs the edges and stages tables"
    out = settings.feature_dir
    out.mkdir(parents=True, exist_ok=True)
    schema: dict[str, dict[str, str]] = {}
    for name, step in steps.items():
        progress(name)
        for view, df in split_view(name, step()).items():
            df.to_parquet(out / f"{view}.parquet", index=False)
            schema[view] = column_kinds(df, skip=(ENTITY, TS))
            report.rows[view] = len(df)
    write_feature_meta(out, FeatureMeta(start=start, end=end, cuts=tuple(cuts), schema=schema))
    return report


def build(settings: Settings, progress: Progress = lambda _: None, *, online: bool = True) -> BuildReport:
    """The whole build: sources and metadata, the Feast registry, and (unless `online` is off) the online store."""
    report = write_sources(settings, progress)
    progress("registering feature views in Feast")
    fs = feature_store.apply(settings)
    if online:
        progress("materialising the online store")
        feature_store.materialize(fs, settings)
    return report
