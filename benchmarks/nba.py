"""Batch next-best-action: 100,000 customers × 8 catalogue actions (7 contacts + do-nothing): eligibility from
consent, reach, lifecycle and contact history, uplift per action, value of a response, the best action each;
then a budgeted plan over the same customers. Prints each phase's time.

The customers are the generated company's resampled (rows with replacement, each copy keeping its source's
identifiers and contact history). Needs a prepared setup with a registered uplift model (`make run` once).

Usage: python -m benchmarks.nba [--customers 100000] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd

from leadscope import catalogue as catalogue_lib
from leadscope.settings import Settings, quiet_environment
from leadscope.tables import read_table
from training import nba, policy, population, tracking


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=20_000.0)
    args = ap.parse_args()
    quiet_environment()
    settings = Settings()
    cat = catalogue_lib.load(settings.actions_catalogue)
    pop = population.load(settings)
    champion = tracking.load_champion(settings, nba.NAME)
    version, bundle = champion.version, champion.model
    rng = np.random.default_rng(0)
    src = rng.integers(0, len(pop), args.customers)
    new_ids = np.array([f"B{i:07d}" for i in range(args.customers)])
    frame = pop.frame.iloc[src].reset_index(drop=True).assign(customer_id=new_ids)
    source_of = pd.DataFrame({"customer_id": pop.ids[src], "new": new_ids})
    contacts = read_table(settings.raw_dir, "customers").merge(source_of, on="customer_id")
    contacts = contacts.drop(columns="customer_id").rename(columns={"new": "customer_id"})
    log = read_table(settings.raw_dir, "campaigns").merge(source_of, on="customer_id")
    log = log.drop(columns="customer_id").rename(columns={"new": "customer_id"})
    print(
        f"{len(frame):,} customers × {len(cat.actions)} actions ({len(cat.contacts)} contacts + do-nothing); "
        f"{len(log):,} logged contacts in their history; uplift v{version}; {args.threads} threads"
    )

    t0 = time.perf_counter()
    scored = nba.score_frame(bundle, cat, frame, contacts, log, pd.Timestamp(pop.as_of), threads=args.threads)
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = len(frame)
    g = np.column_stack([scored.gains, np.zeros(n)])
    best = policy.decide(g, nothing=len(cat.contacts))
    t_decide = time.perf_counter() - t0
    t0 = time.perf_counter()
    planned = nba.plan(scored, args.budget, dict(cat.capacity), cat.nothing.id)
    t_plan = time.perf_counter() - t0

    print(f"\n{'phase':<58} {'seconds':>8}")
    print(f"{'eligibility + uplift × 7 + response value + gains':<58} {t_score:>8.2f}")
    print(f"{'best action per customer (unconstrained)':<58} {t_decide:>8.2f}")
    print(f"{'budgeted plan (greedy by return per cost)':<58} {t_plan:>8.2f}")
    print(f"{'total':<58} {t_score + t_decide + t_plan:>8.2f}   ({n / (t_score + t_decide):,.0f} customers/s)")
    contacted = best != len(cat.contacts)
    print(
        f"\nunconstrained: {contacted.mean():.1%} contacted, spend {np.r_[scored.costs, 0.0][best].sum():,.0f}, "
        f"expected incremental value {g[np.arange(n), best].sum():,.0f}"
    )
    print(
        f"budget {args.budget:,.0f}: {(planned['action_id'] != cat.nothing.id).mean():.1%} contacted, spend "
        f"{planned['cost'].sum():,.0f}, expected incremental value {planned['expected_incremental_value'].sum():,.0f}"
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
