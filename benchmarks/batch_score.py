"""Batch scoring from the offline store (serving/offline.py) against the model's own floor, side by side in one
process on the same customers:

1. the batch path with top-3 reasons (offline read, encode, TreeSHAP, reasons; 2 worker threads) against LightGBM
   predict + pred_contrib on the same matrix with 2 threads (target ≥ 0.5× that floor);
2. the batch path without reasons against LightGBM predict alone with 2 threads (target ≥ 0.3×);
3. for reference, the online path (`--source online`: Feast's online read per chunk) on a slice of the ids;
4. the process's peak memory.

Each timing but the online path's is the best of three runs.

Its company: LEADSCOPE_BATCH_CUSTOMERS customers (default 100,000), seed 7, generated, built and trained once into
/tmp/leadscope-batch/<n> (about 10 minutes at 100,000 on 2 cores), reused after.
Usage: python -m benchmarks.batch_score [--customers 100000] [--online 20000]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np

from leadscope.settings import Settings

WORK = Path("/tmp/leadscope-batch")


def company(customers: int) -> Settings:
    home = WORK / str(customers)
    settings = Settings(home=home, customers=customers, seed=7, live_apply_process=False)
    if not (home / "ready").exists():
        from features.build import build
        from leadscope.synth import generate
        from training import oracle, propensity

        t0 = time.perf_counter()
        generate(customers=customers, seed=settings.seed, end=settings.world_end, days=settings.world_days).write(
            settings.raw_dir
        )
        build(settings)
        propensity.train(settings, oracle=oracle.for_propensity(settings))
        (home / "ready").touch()
        print(f"company built in {time.perf_counter() - t0:.0f} s")
    return settings


def timed(fn, repeat: int = 3) -> float:  # noqa: ANN001
    """The best of `repeat` runs: one run of about a second varied by a third here from one run to the next."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=int(os.environ.get("LEADSCOPE_BATCH_CUSTOMERS", "100000")))
    ap.add_argument("--online", type=int, default=20_000, help="ids scored through the online path, for reference")
    args = ap.parse_args()
    settings = company(args.customers)
    from leadscope.tables import read_table
    from serving.offline import OfflineFeatures, batch_scores
    from serving.scoring import score_items
    from serving.state import ServingState

    ids = read_table(settings.raw_dir, "customers")["customer_id"].astype(str).tolist()
    state = ServingState(settings)
    state.load(names=("propensity",), optional=())
    champ = state.models["propensity"]
    scorer, service = champ.model, state.online.services["propensity"]
    scorer.shap_tables()  # built once at load in the server too
    models = {"propensity": (scorer, service)}

    def run(reasons: str) -> int:
        return sum(len(df) for df in batch_scores(settings, models, ids, reasons=reasons, workers=2))

    run("none")  # warm: DuckDB, the parquet metadata, the page cache
    with_reasons = timed(lambda: run("top3"))
    without = timed(lambda: run("none"))
    # the floor: the same customers' matrix, LightGBM alone on both cores
    features = OfflineFeatures(settings).frame(service, ids)
    X = scorer.encoder.transform(features[scorer.encoder.features])
    booster = scorer.booster
    contrib_floor = timed(
        lambda: (booster.predict(X, num_threads=2), booster.predict(X, pred_contrib=True, num_threads=2))
    )
    predict_floor = timed(lambda: booster.predict(X, raw_score=True, num_threads=2))
    part = ids[: args.online]
    online = timed(
        lambda: [score_items(state, ["propensity"], part[s : s + 5_000]) for s in range(0, len(part), 5_000)],
        repeat=1,
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    n = len(ids)
    rate = {
        "batch, top-3 reasons": n / with_reasons,
        "LightGBM predict + pred_contrib (2 threads)": n / contrib_floor,
        "batch, no reasons": n / without,
        "LightGBM predict (2 threads)": n / predict_floor,
        f"online path ({len(part):,} ids, reference)": len(part) / online,
    }
    print(f"company: {n:,} customers, {X.shape[1]} features, {booster.num_trees()} trees; 2 cores")
    for label, r in rate.items():
        print(f"{label:48s} {r:>10,.0f} rows/s")
    ratio_reasons = rate["batch, top-3 reasons"] / rate["LightGBM predict + pred_contrib (2 threads)"]
    ratio_plain = rate["batch, no reasons"] / rate["LightGBM predict (2 threads)"]
    print(f"ratio batch with reasons / predict + contributions: {ratio_reasons:.2f}x (target ≥ 0.5x)")
    print(f"ratio batch without reasons / predict alone: {ratio_plain:.2f}x (target ≥ 0.3x)")
    print(f"peak memory of this process: {peak:.2f} GiB")
    assert np.isfinite(X).any()


if __name__ == "__main__":
    main()
