"""The feature build, the one entry point: raw tables → every feature view's offline source (graph features
included, computed by graphs/' pure functions) → metadata → Feast registry → online store."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import engineering
from features import store as feature_store
from features.distributed import Partitioned, ViewChunks
from features.graph_pool import GraphPool
from features.inputs import EMPTY, graph_inputs, graph_tables, optional_table, split_view  # noqa: F401 - re-exported
from features.names import builtin_feature_columns
from graphs.features import (
    block_fingerprints,
    cut_blocks,
    graph_feature_cuts,
)
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import (
    FeatureMeta,
    column_kinds,
    has_table,
    read_table,
    recover,
    table_path,
    write_feature_meta,
)

GRAPH_VIEW = "customer_graph"
POOL_MIN_ROWS = 1_000_000  # graph-view rows (customers × cut times) from which it runs in worker processes
REFERENCE_FILE = "reference.json"
PROFILE_ROWS = 500_000  # customers per chunk of the profile view
GRAPH_BLOCKS_FILE = "graph_blocks.json"  # the digests of the graph view's blocks (GraphPlan)
Progress = Callable[[str], None]
# What a view's step gives: the whole frame (the profile), one frame per cut time (the local build: memory holds
# one cut at a time), or a Ray view's batches
Chunks = pd.DataFrame | ViewChunks | Iterator[pd.DataFrame]


@dataclass
class BuildReport:
    """Rows written per feature view; `skipped` says why a view was not built (a table the company lacks)."""

    rows: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    # what went to the online store per view (features/store.py materialize)
    materialised: dict[str, feature_store.Written] = field(default_factory=dict)
    # the graph view's blocks of cut times: (kept from the previous build, all)
    graph_blocks: tuple[int, int] = (0, 0)


def data_end(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The dataset's 'now': the day after the newest timestamp anywhere (customers' creation, events, orders)."""
    stamps = [(tables["customers"], "created_at")] + [(tables[t], "ts") for t in ("events", "transactions")]
    newest = max(pd.to_datetime(df[c], utc=True).max() for df, c in stamps if len(df))
    return newest.floor("D") + pd.Timedelta(days=1)


def read_reference(feature_dir: Path) -> dict | None:
    """The population statistics of the newest cut (engineering.transaction_features' `reference`)."""
    path = feature_dir / REFERENCE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def profile_chunks(settings: Settings, rows: int = PROFILE_ROWS) -> Iterator[pd.DataFrame]:
    """The profile view from the customers table, `rows` customers at a time (the table need not fit in memory:
    at 10 M customers its text alone is about 10 GB in pandas). Each column's kind comes from the file's schema,
    so every chunk has the same columns and types."""
    f = pq.ParquetFile(table_path(settings.raw_dir, "customers"))
    kinds = {
        field.name: "number"
        if pa.types.is_boolean(field.type) or pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        else "text"
        for field in f.schema_arrow
    }
    wanted = [c for c in f.schema_arrow.names if c not in engineering.RESERVED_COLUMNS or c in (ENTITY, "created_at")]
    empty = True
    for batch in f.iter_batches(batch_size=rows, columns=wanted):
        empty = False
        yield engineering.profile_features(batch.to_pandas(), kinds=kinds)
    if empty:
        yield engineering.profile_features(f.schema_arrow.empty_table().select(wanted).to_pandas(), kinds=kinds)


@dataclass
class GraphPlan:
    """The graph view's blocks of cut times (graphs/features.py cut_blocks) with their digests, and which of them
    the previous build computed from the same inputs: their rows are copied from its file, not computed again. A
    rebuild with later data keeps every block but the newest (the cut times lie on a fixed calendar); one with a
    changed old row recomputes the blocks from that row's time on."""

    cuts: pd.DatetimeIndex
    blocks: list[range]
    digests: list[str]
    kept: list[bool]
    previous: Path

    @classmethod
    def make(cls, settings: Settings, inputs: dict[str, object], cuts: pd.DatetimeIndex) -> GraphPlan:
        digests = block_fingerprints(**inputs, cuts=cuts)  # type: ignore[arg-type]
        before = settings.feature_dir / GRAPH_BLOCKS_FILE
        previous = settings.feature_dir / f"{GRAPH_VIEW}.parquet"
        known = set(json.loads(before.read_text())) if before.exists() and previous.exists() else set()
        return cls(cuts, cut_blocks(cuts), digests, [d in known for d in digests], previous)

    def todo(self) -> list[range]:
        """The blocks to compute."""
        return [b for b, kept in zip(self.blocks, self.kept, strict=True) if not kept]

    def todo_cuts(self) -> pd.DatetimeIndex:
        return self.cuts[[i for b in self.todo() for i in b]]

    def merged(self, computed: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """Every cut's frame in cut order: a kept block's read from the previous file, the others' taken from
        `computed` (the todo blocks' frames, one per cut, in order)."""
        for block, kept in zip(self.blocks, self.kept, strict=True):
            if not kept:
                for _ in block:
                    yield next(computed)
                continue
            stamps = self.cuts[block.start : block.stop]
            rows = pq.read_table(self.previous, filters=[(TS, ">=", stamps[0]), (TS, "<=", stamps[-1])]).to_pandas()
            yield from _by_cut(rows, stamps)

    def write(self, staging: Path) -> None:
        (staging / GRAPH_BLOCKS_FILE).write_text(json.dumps(self.digests))


def _by_cut(rows: pd.DataFrame, stamps: pd.DatetimeIndex) -> list[pd.DataFrame]:
    at = pd.to_datetime(rows[TS], utc=True)
    return [rows[at == cut].reset_index(drop=True) for cut in stamps]


def _steps(
    settings: Settings,
    tables: dict[str, pd.DataFrame],
    cuts: pd.DatetimeIndex,
    report: BuildReport,
    ray: Partitioned | None = None,
    pool: GraphPool | None = None,
    graph: tuple[GraphPlan, dict[str, object] | None] | None = None,
) -> dict[str, Callable[[], Chunks]]:
    """The views this company's tables support; the others are recorded in the report with the reason. With
    `ray` (engine=ray) the per-customer views run on Ray over its partitions, with the same functions; with
    `pool` the graph view's blocks are computed in local worker processes (features/graph_pool.py). `graph`: the
    graph view's plan (the blocks kept from the previous build) and its inputs (None when the pool reads them)."""
    cust = tables["customers"]
    steps: dict[str, Callable[[], Chunks]] = {"customer_profile": lambda: profile_chunks(settings)}
    optional: dict[str, tuple[str, Callable[[], Chunks]]] = {
        "customer_transactions": (
            "transactions",
            lambda: engineering.transaction_cuts(tables["transactions"], cust, cuts),
        ),
        "customer_engagement": ("events", lambda: engineering.engagement_cuts(tables["events"], cust, cuts)),
        GRAPH_VIEW: ("edges", lambda: iter(())),  # without edges: skipped below, with the reason
    }
    if graph is not None:
        plan, inputs = graph
        if pool is not None:
            optional[GRAPH_VIEW] = ("edges", lambda: plan.merged(iter(pool)))
        elif ray is not None:
            optional[GRAPH_VIEW] = ("edges", lambda: plan.merged(ray.graph(inputs, cuts, plan.todo())))
        else:
            todo = plan.todo_cuts()
            optional[GRAPH_VIEW] = ("edges", lambda: plan.merged(graph_feature_cuts(**inputs, cuts=todo)))
    if ray is not None:
        for view in ("customer_transactions", "customer_engagement"):
            optional[view] = (optional[view][0], lambda view=view: ray.view(view, cuts))
    for view, (table, step) in optional.items():
        if has_table(settings.raw_dir, table):
            steps[view] = step
        else:
            report.skipped[view] = f"no {table} table"
    return steps


class _ViewFiles:
    """The parquet files of one step's views (the summary view and its `_detail`), written chunk by chunk: a
    local step gives one frame, a Ray step many (features/distributed.py)."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.schema: dict[str, dict[str, str]] = {}
        self.rows: dict[str, int] = {}

    def write(self, name: str, df: pd.DataFrame) -> None:
        for view, part in split_view(name, df).items():
            table = pa.Table.from_pandas(part, preserve_index=False)
            if view not in self.writers:
                self.schema[view] = column_kinds(part, skip=(ENTITY, TS))
                # a column with no value in the first chunk (a cut before anyone existed) is typed null by Arrow;
                # numbers come as float64 whatever they hold, so such a column is text
                schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema])
                self.writers[view] = pq.ParquetWriter(self.staging / f"{view}.parquet", schema)
                self.rows[view] = 0
            self.writers[view].write_table(table.cast(self.writers[view].schema))
            self.rows[view] += len(part)

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def write_sources(
    settings: Settings, progress: Progress = lambda _: None, *, end: pd.Timestamp | None = None
) -> BuildReport:
    """Compute every feature view the tables support into a staging folder, then swap it in with the build's
    metadata: a build that fails part-way leaves the previous features untouched. `end`: the newest cut time
    (default the day after the newest record, see data_end)."""
    names = pq.read_schema(table_path(settings.raw_dir, "customers")).names
    if taken := sorted(set(names) & builtin_feature_columns()):
        raise ValueError(
            f"customers: column {taken[0]} is the name of a built-in feature; rename it (e.g. crm_{taken[0]}) and "
            "import again"
        )
    ray = settings.engine == "ray"
    if ray:  # the driver reads what the graph view needs and no more; the other views run on Ray's partitions
        tables = graph_tables(settings) if has_table(settings.raw_dir, "edges") else {}
        tables.setdefault("customers", read_table(settings.raw_dir, "customers", columns=[ENTITY, "created_at"]))
    else:
        tables = {"customers": read_table(settings.raw_dir, "customers")}
        tables |= {t: optional_table(settings, t) for t in ("transactions", "events")}
    first = pd.to_datetime(tables["customers"]["created_at"], utc=True).min()
    start = first.floor("D")
    end = (data_end(tables) if not ray else _newest_day(settings, tables["customers"])) if end is None else end
    # from the first customer on: a cut before anyone existed would be a view's empty row group
    cuts = engineering.cut_times(start=first, end=end, cadence_days=settings.feature_cadence_days)
    report = BuildReport()
    out = settings.feature_dir
    staging = out.with_name(out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    parts = pool = graph = plan = None
    if has_table(settings.raw_dir, "edges"):
        inputs: dict[str, object] | None = graph_inputs(settings, tables)
        plan = GraphPlan.make(settings, inputs, cuts)  # type: ignore[arg-type]
        report.graph_blocks = (sum(plan.kept), len(plan.blocks))
        release_memory()  # the digests' row hashes are gone: give their pages back before the views start
        if any(plan.kept):
            progress(f"graph view: {sum(plan.kept)} of {len(plan.blocks)} blocks of cut times kept from the last build")
    if ray:
        progress("partitioning the tables by customer on Ray")
        have = tuple(t for t in ("transactions", "events") if has_table(settings.raw_dir, t))
        parts = Partitioned(settings, len(tables["customers"]), have)
    elif plan and (workers := graph_workers(settings, len(tables["customers"]) * len(plan.todo_cuts()))) > 1:
        pool = GraphPool(settings, cuts, workers, plan.todo())  # its blocks start now, beside the views before it
        inputs = None  # the workers read their own
    if plan is not None:
        graph = (plan, inputs)
    schema: dict[str, dict[str, str]] = {}
    try:
        for name, step in _steps(settings, tables, cuts, report, parts, pool, graph).items():
            progress(name)
            whole = step()
            files = _ViewFiles(staging)
            chunk = pd.DataFrame()
            try:
                for chunk in [whole] if isinstance(whole, pd.DataFrame) else whole:
                    files.write(name, chunk)
            finally:
                files.close()
            # the newest cut's statistics: a Ray view collects them, a local view's last chunk is the newest cut
            reference = whole.reference if isinstance(whole, ViewChunks) else chunk.attrs.get("reference")
            if reference is not None:  # population statistics at the newest cut, for live recomputes
                (staging / REFERENCE_FILE).write_text(json.dumps(reference))
            schema |= files.schema
            report.rows |= files.rows
            # let go of this view before the next one is computed: a Ray view's dataset holds its blocks in the
            # object store (spilled to disk: 27 GB for the transaction view at 10 M customers) until it is dropped
            whole = chunk = None
    finally:
        if parts is not None:
            parts.close()
        if pool is not None:
            pool.close()
    if plan is not None:
        plan.write(staging)
    meta = FeatureMeta(start=start, end=end, cuts=tuple(cuts), schema=schema)
    feature_store.write_newest(settings, staging, meta)
    write_feature_meta(staging, meta)
    _swap(staging, out)
    return report


def release_memory() -> None:
    """Freed memory back to the system: Arrow's pool and glibc's arenas keep freed pages otherwise, and a 10 M
    customer build's driver held 7.4 GB after reading the graph's inputs and hashing them."""
    import ctypes

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def graph_workers(settings: Settings, rows: int) -> int:
    """Processes for the local graph view of about `rows` rows (1: in the build's own process). By default one
    per core from POOL_MIN_ROWS rows: a worker's start costs seconds (its imports and reading its inputs), more
    than a small company's whole graph view."""
    if settings.graph_workers:
        return settings.graph_workers
    return (os.cpu_count() or 1) if rows >= POOL_MIN_ROWS else 1


def _newest_day(settings: Settings, customers: pd.DataFrame) -> pd.Timestamp:
    """data_end without loading the event tables: their newest timestamp read by DuckDB from the parquet."""
    import duckdb

    stamps = [pd.to_datetime(customers["created_at"], utc=True).max()]
    for t in ("events", "transactions"):
        if has_table(settings.raw_dir, t):
            path = str(table_path(settings.raw_dir, t)).replace("'", "''")
            newest = duckdb.sql(f"SELECT epoch_ns(max(ts)) FROM read_parquet('{path}')").fetchone()[0]
            if newest is not None:
                stamps.append(pd.Timestamp(newest, unit="ns", tz="UTC"))
    return max(stamps).floor("D") + pd.Timedelta(days=1)


def _swap(staging: Path, out: Path) -> None:
    """The staged features become the features (the previous ones are kept as `<name>.previous` until the
    registry and online store follow, see build)."""
    previous = out.with_name(out.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if out.exists():
        os.replace(out, previous)
    os.replace(staging, out)


def build(settings: Settings, progress: Progress = lambda _: None, *, online: bool = True) -> BuildReport:
    """The whole build: sources and metadata, the Feast registry, and (unless `online` is off) the online store.
    If registering or materialising fails, the previous features come back and are registered again, so the
    offline features, the registry and the online store never disagree. Live records (POST /v1/events) are folded
    into the canonical tables first (features/live.py), so the build reads them."""
    from features import live

    recover(settings.raw_dir)
    if folded := live.fold(settings.raw_dir, settings.database_url):
        progress(f"folded {folded} live records into the tables")
    report = write_sources(settings, progress)
    previous = settings.feature_dir.with_name(settings.feature_dir.name + ".previous")
    try:
        progress("registering feature views in Feast")
        fs = feature_store.apply(settings)
        if online:
            if feature_store.ray_materializes(settings):
                progress("materialising the online store (Feast's Ray compute engine)")
            elif settings.engine == "ray":
                progress(
                    "materialising the online store with Feast's local engine: the history ended more than the "
                    "views' TTL ago, and the Ray engine keeps only rows newer than now minus the TTL"
                )
            else:
                progress("materialising the online store")
            written = feature_store.materialize(fs, settings, previous, live_since=folded)
            report.materialised = written
            if all(w.changed_only for w in written.values()):
                rows = ", ".join(f"{v} {w.rows:,}" for v, w in written.items())
                progress(f"online store: only the customers whose rows changed written ({rows})")
    except BaseException:
        if previous.exists():
            shutil.rmtree(settings.feature_dir, ignore_errors=True)
            os.replace(previous, settings.feature_dir)
            feature_store.apply(settings)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    return report
