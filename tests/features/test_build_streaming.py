"""The local feature build writes each per-customer view one cut time at a time (memory holds one cut, not the
whole view), and what it writes is exactly what the whole-frame feature functions compute."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features import engineering as fe
from features.build import GRAPH_VIEW, graph_inputs, read_reference, write_sources
from graphs.features import cut_blocks, graph_features
from leadscope.synth import generate
from leadscope.tables import read_feature_meta, read_table
from tests.conftest import small_settings


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    settings = small_settings(tmp_path_factory.mktemp("streaming"), customers=1_500)
    generate(customers=1_500, seed=7, end=settings.world_end, days=settings.world_days).write(settings.raw_dir)
    write_sources(settings)
    return settings


def _view(settings, name: str) -> pd.DataFrame:  # noqa: ANN001
    """A view's summary file and its _detail file side by side (the build splits every view that has a CORE)."""
    parts = [pd.read_parquet(settings.feature_dir / f"{name}.parquet")]
    if (detail := settings.feature_dir / f"{name}_detail.parquet").exists():
        parts.append(pd.read_parquet(detail).drop(columns=["customer_id", "event_timestamp"]))
    return pd.concat(parts, axis=1)


def test_each_view_is_written_one_row_group_per_cut_time(built) -> None:
    cuts = read_feature_meta(built.feature_dir).cuts
    assert len(cuts) > 10
    for name in ("customer_transactions", "customer_engagement", GRAPH_VIEW):
        f = pq.ParquetFile(built.feature_dir / f"{name}.parquet")
        assert f.metadata.num_row_groups == len(cuts), name
        stamps = [f.read_row_group(i, columns=["event_timestamp"]).column(0) for i in range(f.num_row_groups)]
        assert [pd.Timestamp(s[0].as_py()) for s in stamps] == [pd.Timestamp(c) for c in cuts], name
        assert all(len(s.unique()) == 1 for s in stamps), name


def test_the_streamed_views_equal_the_whole_frame_functions_and_keep_the_newest_reference(built) -> None:
    cuts = pd.DatetimeIndex(read_feature_meta(built.feature_dir).cuts)
    cust, tx, ev = (read_table(built.raw_dir, t) for t in ("customers", "transactions", "events"))
    want_tx = fe.transaction_features(tx, cust, cuts)
    tables = {"customers": cust, "transactions": tx, "events": ev}
    wants = {
        "customer_transactions": want_tx,
        "customer_engagement": fe.engagement_features(ev, cust, cuts),
        GRAPH_VIEW: graph_features(**graph_inputs(built, tables), cuts=cuts),
    }
    for name, want in wants.items():
        got = _view(built, name)
        assert sorted(got.columns) == sorted(want.columns), name
        pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False, obj=name)
    # the live recomputes rank against the newest cut's population statistics: the streamed build keeps them
    newest = json.loads(json.dumps(want_tx.attrs["reference"]))
    assert read_reference(built.feature_dir) == newest
    assert newest != json.loads(json.dumps(fe.transaction_features(tx, cust, cuts[:-1]).attrs["reference"]))


def test_a_block_of_cuts_from_a_community_anchor_gives_what_the_whole_loop_gives(built) -> None:
    """Communities are refined from the previous cut's, back to an anchor only: a Ray task that starts at an
    anchor (features/distributed.py graph_view) computes the same rows as the single loop over every cut."""
    cuts = pd.DatetimeIndex(read_feature_meta(built.feature_dir).cuts)
    tables = {t: read_table(built.raw_dir, t) for t in ("customers", "transactions", "events")}
    inputs = graph_inputs(built, tables)
    whole = graph_features(**inputs, cuts=cuts)
    blocks = cut_blocks(cuts)
    assert len(blocks) > 3 and all(len(b) <= 5 for b in blocks)  # weekly cuts: 4 a block, the newest one more
    start = cuts[blocks[2].start]
    later = whole[whole["event_timestamp"] >= start].reset_index(drop=True)
    pd.testing.assert_frame_equal(graph_features(**inputs, cuts=cuts[blocks[2].start :]), later)
    # and the refined communities are real ones: most customers share theirs with someone
    newest = whole[whole["event_timestamp"] == cuts[-1]]
    assert newest["community_size"].gt(1).mean() > 0.5


def test_the_graph_view_in_worker_processes_is_the_one_process_view(built, tmp_path) -> None:
    """The graph view's blocks in two worker processes (features/graph_pool.py), beside the other views, write
    the same file as the build's one-process loop (`built`: a small company, below the size that starts workers)."""
    import shutil

    from features.build import graph_workers

    assert graph_workers(built, 1_500 * 60) == 1  # the fixture's build ran in one process
    pooled = small_settings(tmp_path, customers=1_500, graph_workers=2)
    shutil.copytree(built.raw_dir, pooled.raw_dir)
    write_sources(pooled)
    one, two = (pq.read_table(s.feature_dir / f"{GRAPH_VIEW}.parquet") for s in (built, pooled))
    assert two.num_rows > 0 and two.equals(one)
    assert pq.ParquetFile(pooled.feature_dir / f"{GRAPH_VIEW}.parquet").metadata.num_row_groups == len(
        read_feature_meta(built.feature_dir).cuts
    )
