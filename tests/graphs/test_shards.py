"""The graph view computed in shards of whole connected components (the Ray build's tasks) equals the one-process
computation exactly, and a component's features do not depend on what else was computed beside it."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from graphs import social
from graphs.features import GraphInputs, assemble, cut_blocks, cut_totals, graph_feature_cuts, graph_shards, shard_cuts
from leadscope.synth.regions import write_company
from leadscope.tables import read_table


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two regions (independent social graphs, so at least two big components) of a 900-customer company."""
    end = pd.Timestamp("2026-06-30", tz="UTC").to_pydatetime()
    out = tmp_path_factory.mktemp("shards")
    write_company(out, customers=900, seed=3, end=end, days=150, region=450, workers=1)
    stages = read_table(out, "stages").assign(ts=lambda d: pd.to_datetime(d["ts"], utc=True))
    first = {s: stages[stages["stage"] == s].groupby("customer_id")["ts"].min() for s in ("won", "churned")}
    return {
        "edges": read_table(out, "edges"),
        "customers": read_table(out, "customers"),
        "won_at": first["won"],
        "churned_at": first["churned"],
        "transactions": read_table(out, "transactions"),
        "events": read_table(out, "events"),
        "seed": 3,
    }


def test_shards_give_the_one_process_rows(inputs: dict[str, object]) -> None:
    """Broken: a global number (conversion rate, PageRank's mean, the modularity's edge total, the opinion
    leaders' threshold) taken over a shard instead of the whole graph, or communities that depend on the shard."""
    g = GraphInputs(**{k: v for k, v in inputs.items() if k != "seed"})  # type: ignore[arg-type]
    start = pd.Timestamp(g.created.min(), tz="UTC").ceil("D")
    cuts = pd.date_range(start + pd.Timedelta(days=30), periods=12, freq="7D")
    whole = list(graph_feature_cuts(**inputs, cuts=cuts))  # type: ignore[arg-type]
    shards = graph_shards(g, 5)
    assert len(shards) >= 3 and sorted(np.concatenate(shards).tolist()) == list(range(len(g.created)))
    totals = cut_totals(g, cuts)
    for block in cut_blocks(cuts):  # as the Ray tasks compute them: block by block, shard by shard
        span = cuts[block.start : block.stop]
        parts = [list(shard_cuts(g.take(s), totals[block.start : block.stop], span, seed=3)) for s in shards]
        for j in range(len(span)):
            pd.testing.assert_frame_equal(assemble([p[j] for p in parts]), whole[block.start + j], check_exact=True)
    last = whole[-1]
    assert last["community_id"].nunique() > 2 and (last["pagerank"].mean() == pytest.approx(1.0))


def test_a_component_s_communities_do_not_depend_on_the_others() -> None:
    """The same component alone and beside another: the same communities (named by their first node)."""
    a = nx.connected_watts_strogatz_graph(40, 4, 0.2, seed=1)
    b = nx.connected_watts_strogatz_graph(30, 4, 0.2, seed=2)
    both = nx.disjoint_union(b, a)  # a's nodes are 30..69
    src, dst = map(np.array, zip(*a.edges(), strict=True))
    s2, d2 = map(np.array, zip(*both.edges(), strict=True))
    names = np.arange(30, 70)
    alone = social.communities(40, src, dst, seed=4, pairs=both.number_of_edges(), names=names)
    together = social.communities(70, s2, d2, seed=4)
    assert (names[alone] == together[30:]).all() and len(set(alone)) > 1


def test_pagerank_weights_are_pagerank() -> None:
    g = nx.gnp_random_graph(60, 0.05, seed=3, directed=True)  # some nodes without out-links
    src, dst = map(np.array, zip(*g.edges(), strict=True))
    y = social.pagerank_weights(social.adjacency(src, dst, 60))
    ref = nx.pagerank(g, alpha=social.DAMPING, tol=1e-12)
    np.testing.assert_allclose(y / y.sum(), [ref[i] for i in range(60)], atol=1e-9)
