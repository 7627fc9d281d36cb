"""The feature build's per-customer views on Ray (LEADSCOPE_ENGINE=ray): the same pure feature functions as the
local build (features/engineering.py), run by Ray Data over customer partitions.

1. Partition: each raw table (only the columns the views read) is read by Ray Data and written back as parquet
   partitioned by a stable hash of customer_id (`_bucket=k/`), so one task finds all of a customer's rows.
2. Per partition (`map_batches`, one partition per call): `transaction_features(..., relative=False)` and
   `engagement_features` of that partition's customers, exactly as the local build calls them.
3. The relative features (RFM quintiles, the high-value tag) rank each customer against everyone alive at the
   cut: the population statistics per cut come from a `groupby(ts).map_groups` over the partition outputs, and
   `add_relative` fills them in a second `map_batches`.
4. The driver streams the result into the view's parquet files batch by batch (`ViewChunks`).
5. The graph view: the blocks of cut times (graphs/features.py cut_blocks) the build does not keep from the
   previous one run as Ray tasks, one per block and shard of whole connected components (`graph_view`), with
   graphs/features.py's own functions.

The rows come out in another order than the local build's (partition by partition); the values are the same
(tests/test_ray.py compares them column by column).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import engineering, lifecycle
from leadscope.engine import ensure_ray, ray_cpus
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import table_path

BUCKET = "_bucket"
# What each view reads of each table (the partition step copies only these columns)
READS = {
    "customers": [ENTITY, "created_at"],
    "transactions": [ENTITY, "ts", "amount", "category", "is_refund"],
    "events": [ENTITY, "ts", "event_type"],
}
VIEW_TABLE = {"customer_transactions": "transactions", "customer_engagement": "events"}
# a partition's task held 3.86 GB at 125,000 customers with 22 cuts (docs/SCALE.md, 2026-12-07)
CUSTOMERS_PER_PARTITION = 125_000
DRIVER_BATCH = 250_000  # rows per batch the driver writes


def partitions(settings: Settings, customers: int) -> int:
    """How many customer partitions: ray_partitions, else 4 per CPU and at least one per 125,000 customers."""
    if settings.ray_partitions:
        return settings.ray_partitions
    return max(4 * ray_cpus(settings), -(-customers // CUSTOMERS_PER_PARTITION))


def bucket_of(ids: pd.Series, n: int) -> np.ndarray:
    """A customer's partition: a stable 64-bit hash of the id (pandas' hash, the same in every process and run)."""
    return (pd.util.hash_pandas_object(ids.astype(str), index=False).to_numpy() % np.uint64(n)).astype(np.int64)


def _with_bucket(batch: pd.DataFrame, n: int) -> pd.DataFrame:
    return batch.assign(**{BUCKET: bucket_of(batch[ENTITY], n)})


def _columns(path: Path, table: str) -> list[str]:
    have = set(pq.read_schema(path).names)
    return [c for c in READS[table] if c in have]


def partition_tables(settings: Settings, into: Path, n: int, tables: tuple[str, ...]) -> dict[str, pa.Schema]:
    """Write the columns the views read of each table under `into/<table>/_bucket=k/` (Ray Data, every worker);
    returns each table's schema (so an empty partition reads as an empty frame of the right types)."""
    ensure_ray(settings)
    import ray.data

    schemas = {}
    for table in tables:
        path = table_path(settings.raw_dir, table)
        cols = _columns(path, table)
        schemas[table] = pq.read_schema(path).empty_table().select(cols).schema
        ds = ray.data.read_parquet(str(path)).select_columns(cols)
        ds.map_batches(_with_bucket, fn_kwargs={"n": n}, batch_format="pandas").write_parquet(
            str(into / table), partition_cols=[BUCKET]
        )
    return schemas


def _read(into: Path, table: str, bucket: int, schema: pa.Schema) -> pd.DataFrame:
    part = into / table / f"{BUCKET}={bucket}"
    if not part.exists():
        return schema.empty_table().to_pandas()
    return pq.read_table(part, schema=schema).to_pandas(ignore_metadata=True)  # numpy dtypes, as read_table gives


def _partition_view(
    batch: pd.DataFrame, *, view: str, into: str, cuts: list[str], schemas: dict[str, pa.Schema]
) -> pd.DataFrame:
    """The view's rows for the partitions in `batch` (one per call): the local build's own function."""
    at = pd.DatetimeIndex(pd.to_datetime(cuts, utc=True))
    frames = []
    for bucket in batch["partition"]:
        cust = _read(Path(into), "customers", int(bucket), schemas["customers"])
        rows = _read(Path(into), VIEW_TABLE[view], int(bucket), schemas[VIEW_TABLE[view]])
        if view == "customer_transactions":
            frames.append(engineering.transaction_features(rows, cust, at, relative=False))
        else:
            frames.append(engineering.engagement_features(rows, cust, at))
    return pd.concat(frames, ignore_index=True)


def _cut_reference(group: pd.DataFrame) -> pd.DataFrame:
    (cut, ref), *_ = engineering.cut_references(group).items()
    return pd.DataFrame({TS: [cut], "reference": [json.dumps(ref)]})


def _add_relative(batch: pd.DataFrame, refs: dict[str, dict]) -> pd.DataFrame:
    return engineering.add_relative(batch, {pd.Timestamp(k): v for k, v in refs.items()})


@dataclass
class ViewChunks:
    """A view computed on Ray, read back in batches; `reference` (the newest cut's population statistics) is set
    for the transaction view."""

    batches: Iterator[pd.DataFrame]
    reference: dict | None = None
    partitions: int = 0
    stats: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return self.batches


def build_view(settings: Settings, view: str, into: Path, n: int, cuts: pd.DatetimeIndex, schemas: dict) -> ViewChunks:
    """One per-customer view over the partitions written by partition_tables."""
    ensure_ray(settings)
    import ray.data
    from ray.data.context import ShuffleStrategy

    # the sort-based shuffle for the statistics' groupby below: the hash shuffle reserves each of its aggregator
    # actors' memory from the data's size, clamped to a node's. At 10 M customers on one 2-CPU node two such
    # actors never both fit, and the groupby waited forever ("Only 0 out of 2 hash-shuffle aggregators are
    # ready", Ray 2.58). Set before the dataset is made: a dataset keeps the context it was made with.
    ray.data.DataContext.get_current().shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    kwargs = {"view": view, "into": str(into), "cuts": [c.isoformat() for c in cuts], "schemas": schemas}
    ds = ray.data.from_items([{"partition": b} for b in range(n)], override_num_blocks=n)
    ds = ds.map_batches(_partition_view, fn_kwargs=kwargs, batch_size=1, batch_format="pandas")
    out = ViewChunks(batches=iter(()), partitions=n)
    if view == "customer_transactions":
        # read twice (the statistics, then the rows): kept in the object store, spilled to disk beyond it (27 GB
        # at 10 M customers). The engagement view streams once, straight to the driver.
        ds = ds.materialize()
        inputs = [TS, *lifecycle.REFERENCE_INPUTS.values()]
        rows = ds.select_columns(inputs).groupby(TS).map_groups(_cut_reference, batch_format="pandas").take_all()
        refs = {pd.Timestamp(r[TS]).isoformat(): json.loads(r["reference"]) for r in rows}
        out.reference = refs[max(refs, key=pd.Timestamp)] if refs else None
        ds = ds.map_batches(_add_relative, fn_kwargs={"refs": refs}, batch_format="pandas")
    # batches of a bounded size, whatever a partition's block holds (slices of it: no copy in the object store)
    out.batches = (_as_local(b) for b in ds.iter_batches(batch_format="pyarrow", batch_size=DRIVER_BATCH))
    return out


def _as_local(batch: pa.Table) -> pd.DataFrame:
    """A batch with the dtypes the local build's frames have: the id as object, other text as pandas' string,
    numbers as float64 (Ray Data hands pandas batches Arrow-backed dtypes)."""
    df = batch.to_pandas(ignore_metadata=True, types_mapper={pa.string(): pd.StringDtype()}.get)
    return df.astype({ENTITY: object})


class Partitioned:
    """The raw tables partitioned once for every per-customer view of one build; the folder goes at close."""

    def __init__(self, settings: Settings, customers: int, tables: tuple[str, ...]) -> None:
        self.settings = settings
        self.n = partitions(settings, customers)
        self.into = settings.feature_dir.with_name(settings.feature_dir.name + ".partitions")
        shutil.rmtree(self.into, ignore_errors=True)
        self.schemas = partition_tables(settings, self.into, self.n, ("customers", *tables))

    def view(self, view: str, cuts: pd.DatetimeIndex) -> ViewChunks:
        return build_view(self.settings, view, self.into, self.n, cuts, self.schemas)

    def graph(self, inputs: dict[str, object], cuts: pd.DatetimeIndex, spans: list[range]) -> Iterator[pd.DataFrame]:
        return graph_view(self.settings, inputs, cuts, spans)

    def close(self) -> None:
        shutil.rmtree(self.into, ignore_errors=True)


def _shard_block(g: object, cuts: list[str], totals: list[dict[str, float]], seed: int) -> tuple[pd.DataFrame, ...]:
    """One shard's rows at each cut of a block (graphs/features.py shard_cuts), one object per cut."""
    from graphs.features import shard_cuts

    at = pd.DatetimeIndex(pd.to_datetime(cuts, utc=True))
    frames = tuple(shard_cuts(g, totals, at, seed=seed))  # type: ignore[arg-type]
    return frames if len(frames) != 1 else frames[0]  # type: ignore[return-value]


def graph_view(
    settings: Settings, inputs: dict[str, object], cuts: pd.DatetimeIndex, spans: list[range]
) -> Iterator[pd.DataFrame]:
    """The graph view's blocks of cut times (`spans`, graphs/features.py cut_blocks) as Ray tasks, one per block
    and shard, one frame per cut in cut order.

    A shard is whole connected components of the graph (graph_shards), about a partition's share of the
    customers, so a task holds its shard's inputs and rows, not the whole graph's. The driver computes the few
    numbers of each cut that span the whole graph first (cut_totals: conversion rate, median order, the opinion
    leaders' threshold, the links), and assembles each cut from its shards' rows (PageRank's mean, community
    names): the rows equal graph_feature_cuts' in one process (tests/test_ray.py). Blocks depend on nothing
    before them; at most BLOCKS_AHEAD blocks are computed ahead of the one the driver writes, so the object
    store holds a few blocks' rows whatever the number of cuts."""
    from graphs.features import GraphInputs, assemble, cut_totals, graph_shards

    ray = ensure_ray(settings)
    task = ray.remote(num_cpus=1, max_retries=1)(_shard_block)
    g = GraphInputs(**{k: v for k, v in inputs.items() if k != "seed"})  # type: ignore[arg-type]
    seed = int(inputs.get("seed", 0))  # type: ignore[call-overload]
    todo = [i for span in spans for i in span]
    totals = dict(zip(todo, cut_totals(g, cuts[todo]), strict=True))
    shards = [ray.put(g.take(nodes)) for nodes in graph_shards(g, partitions(settings, len(g.created)))]
    del g  # in the object store now, shard by shard

    def submit(span: range) -> list[list[object]]:
        stamps, tot = [cuts[i].isoformat() for i in span], [totals[i] for i in span]
        refs = [task.options(num_returns=len(span)).remote(shard, stamps, tot, seed) for shard in shards]
        return [r if len(span) != 1 else [r] for r in refs]

    pending = [submit(span) for span in spans[:BLOCKS_AHEAD]]
    for k, span in enumerate(spans):
        if k + BLOCKS_AHEAD < len(spans):
            pending.append(submit(spans[k + BLOCKS_AHEAD]))
        block = pending[k]
        pending[k] = []  # its objects go once the driver has them
        for j in range(len(span)):
            yield assemble([ray.get(refs[j]) for refs in block])


BLOCKS_AHEAD = 2
