"""The graph view rebuilt incrementally against from nothing, on the same company in one run.

1. A build from nothing that ends --days-earlier days before the data's end (the company as it was then).
2. The build to the data's end on top of it: the graph view keeps every block of cut times whose inputs did not
   change (features/build.py GraphPlan) and computes the rest.
3. The same build to the data's end from nothing, in another folder.

Prints each build's graph view and total seconds, the blocks kept, the ratio of the graph view's times, and
checks that the incremental file equals the one from nothing. The company: --customers (default 200,000), seed 7,
generated once into /tmp/leadscope-scale/<n> (the scale benchmark's).
Usage: python -m benchmarks.graph_incremental [--customers 200000] [--days-earlier 7]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from benchmarks.scale import company, settings_for


def timed_build(settings, end: pd.Timestamp | None = None) -> dict:  # noqa: ANN001
    """write_sources with each step's seconds; the graph view is the step named customer_graph."""
    from features.build import GRAPH_VIEW, write_sources

    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    report = write_sources(settings, lambda step: marks.append((step, time.perf_counter())), end=end)
    total = time.perf_counter() - t0
    steps = {n: b - a for (n, a), (_, b) in zip(marks, [*marks[1:], ("end", t0 + total)], strict=True)}
    return {"seconds": total, "graph": steps[GRAPH_VIEW], "blocks": report.graph_blocks}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--days-earlier", type=int, default=7)
    args = ap.parse_args()
    from features.build import GRAPH_VIEW, _newest_day
    from leadscope.tables import read_table

    company(args.customers)
    inc = settings_for(args.customers, "local", 2, 1024)
    fresh_home = Path(f"/tmp/leadscope-graph-fresh/{args.customers}")
    fresh = inc.model_copy(update={"home": fresh_home})
    for s in (inc, fresh):
        shutil.rmtree(s.feature_dir, ignore_errors=True)
    (fresh.raw_dir.parent).mkdir(parents=True, exist_ok=True)
    if not fresh.raw_dir.exists():
        fresh.raw_dir.symlink_to(inc.raw_dir)

    end = _newest_day(inc, read_table(inc.raw_dir, "customers", columns=["created_at"]))  # the build's default end
    before = timed_build(inc, end=end - pd.Timedelta(days=args.days_earlier))
    after = timed_build(inc)
    nothing = timed_build(fresh)
    same = pq.read_table(inc.feature_dir / f"{GRAPH_VIEW}.parquet").equals(
        pq.read_table(fresh.feature_dir / f"{GRAPH_VIEW}.parquet")
    )
    print(f"company: {args.customers:,} customers; data end {end.date()}, rebuilt {args.days_earlier} days later")
    print(
        f"build ending {args.days_earlier} days earlier, from nothing: {before['seconds']:.1f} s, "
        f"graph view {before['graph']:.1f} s"
    )
    kept, blocks = after["blocks"]
    print(
        f"rebuild to the end, incremental: {after['seconds']:.1f} s, graph view {after['graph']:.1f} s "
        f"({kept} of {blocks} blocks kept)"
    )
    print(f"rebuild to the end, from nothing: {nothing['seconds']:.1f} s, graph view {nothing['graph']:.1f} s")
    print(
        f"graph view incremental / from nothing: {after['graph'] / nothing['graph']:.2f}×; whole build "
        f"{after['seconds'] / nothing['seconds']:.2f}×; files equal: {same}"
    )


if __name__ == "__main__":
    main()
