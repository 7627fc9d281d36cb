"""TreeSHAP from tables (training/treeshap.py) against LightGBM's own pred_contrib, side by side in one process on
the same rows: the propensity champion of the freshness benchmark's company (4,000 customers, built when absent),
rows from its probe set (every branch of every tree), 1 thread each. Also checks that both give the same values.
Usage: python -m benchmarks.treeshap [--repeat 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.freshness import company
from training import tracking, treeshap


def per_call(fn, repeat: int) -> float:  # noqa: ANN001
    fn()
    best = float("inf")
    for _ in range(3):  # the best of three runs of `repeat` calls: the least disturbed by the machine
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    settings = company()
    scorer = tracking.load_champion(settings, "propensity").model
    booster = scorer.booster
    t0 = time.perf_counter()
    tables = treeshap.build(booster)
    built = time.perf_counter() - t0
    info = booster.dump_model()["tree_info"]
    print(
        f"propensity: {len(info)} trees of at most {max(t['num_leaves'] for t in info)} leaves, "
        f"{booster.num_feature()} features; tables built in {built:.2f} s ({tables.table.nbytes / 2**20:.1f} MiB)"
    )
    X = treeshap.probe(booster, 10_000, seed=1)
    same = np.abs(tables.contributions(X) - booster.predict(X, pred_contrib=True, num_threads=1)).max()
    print(f"largest difference from LightGBM over {len(X):,} probe rows: {same:.1e}")
    print(f"{'rows':>6} {'LightGBM pred_contrib':>22} {'tables':>12} {'speed-up':>9}")
    for n in (1, 3, 8, 64, 1_000, 10_000):
        x = X[:n]
        reps = max(1, args.repeat * 8 // max(n, 8))
        lgbm = per_call(lambda x=x: booster.predict(x, pred_contrib=True, num_threads=1), reps)
        mine = per_call(lambda x=x: tables.contributions(x), reps)
        print(f"{n:>6} {lgbm * 1e6 / n:>16.1f} µs/row {mine * 1e6 / n:>7.1f} µs/row {lgbm / mine:>8.1f}x")


if __name__ == "__main__":
    main()
