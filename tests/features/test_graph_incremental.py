"""A rebuild keeps the graph view's blocks of cut times whose inputs did not change (features/build.py GraphPlan)
and writes exactly the file a build from nothing writes."""

from __future__ import annotations

import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.build import GRAPH_VIEW, write_sources
from leadscope.synth import generate
from leadscope.tables import read_feature_meta
from tests.conftest import small_settings


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    settings = small_settings(tmp_path_factory.mktemp("incremental"), customers=1_200)
    generate(customers=1_200, seed=5, end=settings.world_end, days=settings.world_days).write(settings.raw_dir)
    return settings


def _fresh(settings, tmp_path, name: str):  # noqa: ANN001, ANN202
    """The same raw tables built from nothing in another home."""
    other = small_settings(tmp_path / name, customers=settings.customers)
    shutil.copytree(settings.raw_dir, other.raw_dir)
    write_sources(other)
    return pq.read_table(other.feature_dir / f"{GRAPH_VIEW}.parquet")


def test_a_rebuild_with_later_data_computes_only_the_newest_block(company, tmp_path) -> None:
    """A build that ended 20 days earlier (as if the newest days had not arrived yet), then today's: every block
    but the newest ones is kept, and the file equals a build from nothing (broken: kept rows from a stale graph,
    or rows computed differently from a block's start than from the first cut)."""
    meta_end = pd.Timestamp(company.world_end).floor("D")
    earlier = write_sources(company, end=meta_end - pd.Timedelta(days=20))
    assert earlier.graph_blocks[0] == 0  # nothing to keep in a first build
    report = write_sources(company)
    kept, blocks = report.graph_blocks
    assert blocks >= 10 and blocks - 2 <= kept < blocks
    got = pq.read_table(company.feature_dir / f"{GRAPH_VIEW}.parquet")
    assert got.num_rows == report.rows[GRAPH_VIEW] and got.equals(_fresh(company, tmp_path, "fresh"))
    again = write_sources(company)  # nothing changed: every block kept
    assert again.graph_blocks == (blocks, blocks)
    assert pq.read_table(company.feature_dir / f"{GRAPH_VIEW}.parquet").equals(got)


def test_a_changed_old_edge_recomputes_the_blocks_from_its_time_on(company, tmp_path) -> None:
    write_sources(company)
    cuts = pd.DatetimeIndex(read_feature_meta(company.feature_dir).cuts)
    edges = pd.read_parquet(company.raw_dir / "edges.parquet")
    when = cuts[len(cuts) // 2] - pd.Timedelta(days=1)
    old = edges[edges["ts"] < when - pd.Timedelta(days=60)].iloc[0]
    extra = old.copy()
    extra["ts"], extra["kind"] = when, "referral"  # the same pair, a referral recorded late
    pd.concat([edges, extra.to_frame().T.astype(edges.dtypes)], ignore_index=True).to_parquet(
        company.raw_dir / "edges.parquet", index=False
    )
    report = write_sources(company)
    kept, blocks = report.graph_blocks
    before = sum(1 for c in cuts if c < when)  # the cuts before the new edge: their blocks can be kept
    assert 0 < kept < blocks and kept <= -(-before // 4)
    got = pq.read_table(company.feature_dir / f"{GRAPH_VIEW}.parquet")
    assert got.equals(_fresh(company, tmp_path, "fresh-edge"))
    newest = got.to_pandas().set_index(["customer_id", "event_timestamp"])
    assert newest.loc[(old["src_customer_id"], cuts[-1]), "referral_count"] >= 1
