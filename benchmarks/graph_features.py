"""All social-graph features for 1,000,000 customers / ~10,000,000 edges, next to networkx's own PageRank
and a scipy sparse power iteration on the same graph, each phase in its own process (time, peak memory).

Usage: python -m benchmarks.graph_features [--customers 1000000] [--edges-per-node 10]
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime
from multiprocessing import Queue
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._load import run_phases

END = datetime(2026, 6, 30, tzinfo=UTC)


def make_inputs(n: int, per_node: float, out: Path, seed: int = 0) -> int:
    """The generator's people and social processes at scale (no events/orders simulation: random ones)."""
    from leadscope.synth import people, social
    from leadscope.synth.world import World

    rng = np.random.default_rng(seed)
    world = World(start=pd.Timestamp(END).to_pydatetime() - pd.Timedelta(days=540), days=540)
    tr = people.traits(rng, world, n)
    ids = np.array([f"C{i:07d}" for i in range(n)])
    ref = social.referrals(rng, tr)
    src, dst = social.follows(rng, tr, mean_out=per_node / 1.35)  # interactions add ~35 % on top of follows
    edges = social.edges_table(rng, world, ids, tr, ref, src, dst)
    created = world.to_ts(tr["created_day"].to_numpy())
    customers = pd.DataFrame(
        {"customer_id": ids, "created_at": created, "social_followers": tr["followers"].where(rng.random(n) < 0.6)}
    )
    won = rng.random(n) < 0.25
    tx_who = rng.choice(np.flatnonzero(won), 3 * won.sum())
    pd.DataFrame(
        {
            "customer_id": ids[tx_who],
            "ts": created.to_numpy()[tx_who] + pd.Timedelta(days=10),
            "amount": rng.lognormal(4, 1, len(tx_who)),
            "is_refund": False,
        }
    ).to_parquet(out / "tx.parquet")
    pd.DataFrame({"customer_id": ids[won], "ts": created[won].to_numpy() + pd.Timedelta(days=20)}).to_parquet(
        out / "won.parquet"
    )
    keen = rng.random(n) < 0.3
    pd.DataFrame({"customer_id": ids[keen], "ts": created[keen].to_numpy(), "event_type": "pricing_view"}).to_parquet(
        out / "events.parquet"
    )
    customers.to_parquet(out / "customers.parquet")
    edges.to_parquet(out / "edges.parquet")
    return len(edges)


def ours(out: Path, q: Queue) -> None:
    from graphs.features import graph_features

    edges = pd.read_parquet(out / "edges.parquet")
    t0 = time.perf_counter()
    won = pd.read_parquet(out / "won.parquet").set_index("customer_id")["ts"]
    df = graph_features(
        edges=edges,
        customers=pd.read_parquet(out / "customers.parquet"),
        won_at=won,
        churned_at=pd.Series(dtype="datetime64[ns, UTC]"),
        transactions=pd.read_parquet(out / "tx.parquet"),
        events=pd.read_parquet(out / "events.parquet"),
        cuts=pd.DatetimeIndex([pd.Timestamp(END)]),
    )
    q.put(("all graph features (ours, 1 cut)", time.perf_counter() - t0, _peak_gib(), len(df)))


def pagerank_scipy(out: Path, q: Queue) -> None:
    from graphs.social import PAGERANK_ITERATIONS, adjacency, pagerank_weights

    s, d, n = _follow_codes(out)
    t0 = time.perf_counter()
    pagerank_weights(adjacency(s, d, n))
    label = f"PageRank scipy power iteration ({PAGERANK_ITERATIONS} iterations)"
    q.put((label, time.perf_counter() - t0, _peak_gib(), n))


def pagerank_networkx(out: Path, q: Queue) -> None:
    import networkx as nx

    s, d, n = _follow_codes(out)
    t0 = time.perf_counter()
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(s.tolist(), d.tolist(), strict=True))
    t1 = time.perf_counter()
    nx.pagerank(g, alpha=0.85)
    q.put((f"PageRank networkx (graph build {t1 - t0:.1f} s + default tol)", time.perf_counter() - t0, _peak_gib(), n))


def _follow_codes(out: Path) -> tuple[np.ndarray, np.ndarray, int]:
    e = pd.read_parquet(out / "edges.parquet", columns=["src_customer_id", "dst_customer_id"])
    ids = pd.Index(pd.read_parquet(out / "customers.parquet", columns=["customer_id"])["customer_id"])
    return ids.get_indexer(e["src_customer_id"]), ids.get_indexer(e["dst_customer_id"]), len(ids)


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--edges-per-node", type=float, default=10.3)
    ap.add_argument("--work", type=Path, default=Path("data/bench_graph"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    m = make_inputs(args.customers, args.edges_per_node, args.work)
    print(f"inputs: {args.customers:,} customers, {m:,} edges (made in {time.perf_counter() - t0:.0f} s)")
    for name, secs, peak, _ in run_phases([ours, pagerank_scipy, pagerank_networkx], args.work).values():
        print(f"{name:<58} {secs:8.1f} s   peak {peak:5.1f} GiB")
    print("target: all features for 1M customers / 10M edges under 5 minutes and 12 GiB on 2 cores")


if __name__ == "__main__":
    main()
