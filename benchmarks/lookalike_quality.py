"""Lookalike quality on the generated company: precision@k and recall@k of our audiences, the oracle (the true
hidden segment first) and the centroid baseline, for audiences of 1 %, 2.5 % and 5 % of the population, over
several seeds drawn from the segment. The "supervised ceiling" is a classifier trained (cross-fitted) on everyone's
true membership: how far these features can tell the segment apart at all.

Usage: python -m benchmarks.lookalike_quality [--seed-share 0.3] [--draws 3]   (after `make run`)
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from leadscope.settings import Settings, quiet_environment
from training import lookalike_eval, population


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed-share", type=float, default=0.3, help="Share of the segment given as the seed.")
    ap.add_argument("--draws", type=int, default=3, help="Seeds drawn (different members each time).")
    args = ap.parse_args()
    quiet_environment()
    settings = Settings()
    pop = population.load(settings)
    segment = lookalike_eval.segment_of(pop, pd.read_parquet(settings.raw_dir / "truth" / "customers.parquet"))
    n = len(pop)
    ks = [n // 100, n // 40, n // 20]
    print(f"{n:,} people, {segment.sum():,} in the hidden segment; seed = {args.seed_share:.0%} of the segment")
    print(
        f"{'k':>6} {'draw':>4} {'seed':>5} {'P ours':>7} {'P oracle':>8} {'P base':>7} {'R ours':>7} {'R oracle':>8} "
        f"{'ours/oracle':>11} {'ours/base':>9}"
    )
    ceiling = lookalike_eval.supervised_ceiling(pop, segment, threads=2)
    table = []
    for draw in range(args.draws):
        seed = lookalike_eval.seed_from_segment(segment, args.seed_share, seed=100 + draw)
        for q in lookalike_eval.evaluate(pop, segment, seed, ks, threads=2, ceiling=ceiling):
            table.append(q)
            print(
                f"{q.k:>6} {draw:>4} {len(seed):>5} {q.ours_precision:>7.3f} {q.oracle_precision:>8.3f} "
                f"{q.baseline_precision:>7.3f} {q.ours_recall:>7.3f} {q.oracle_recall:>8.3f} "
                f"{q.vs_oracle:>11.3f} {q.vs_baseline:>9.2f}"
            )
    print("\nmean over draws")
    for k in ks:
        qs = [q for q in table if q.k == k]
        print(
            f"  k={k:>5} ({k / n:.1%}): precision ours {np.mean([q.ours_precision for q in qs]):.3f}, "
            f"oracle {np.mean([q.oracle_precision for q in qs]):.3f}, "
            f"baseline {np.mean([q.baseline_precision for q in qs]):.3f}; "
            f"ours/oracle {np.mean([q.vs_oracle for q in qs]):.3f}, "
            f"ours/baseline {np.mean([q.vs_baseline for q in qs]):.2f}; "
            f"supervised ceiling {np.mean([q.ceiling_precision for q in qs]):.3f} "
            f"(ours/ceiling {np.mean([q.ours_precision / q.ceiling_precision for q in qs]):.3f})"
        )


if __name__ == "__main__":
    main()
