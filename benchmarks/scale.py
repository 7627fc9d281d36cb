"""The pipeline on the local engine and on a local Ray, side by side in one run on the same generated company:

1. the feature build (`features.build.write_sources`), each engine in its own process: wall time per view, the
   process's peak RSS, and on Ray the peak RSS of the biggest Ray worker and of all Ray processes together;
2. training on the same snapshot: one propensity training frame (a sample of the label rows, the same for both),
   fitted by the local LightGBM and by Ray Train's data-parallel LightGBM on 2 workers: holdout AUC and time;
3. batch scoring of every customer from the offline store: the local thread pool against Ray Data batch
   inference (2 actors), top-3 reasons and none.

The Ray overhead ratio is Ray's time over the local time on the same work. The company: --customers (default
200,000), seed 7, generated once into /tmp/leadscope-scale/<n>; Ray gets --cpus CPUs and a --object-store-mb
object store (it spills to disk above).
Usage: python -m benchmarks.scale [--customers 200000] [--cpus 2] [--label-rows 400000] [--skip-build]
       [--days 540] [--engines local,ray]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

WORK = Path("/tmp/leadscope-scale")


DAYS = 540  # the history generated (--days; the generator's default)


def settings_for(customers: int, engine: str, cpus: int, store_mb: int):  # noqa: ANN201
    from leadscope.settings import Settings

    return Settings(
        home=WORK / (str(customers) if DAYS == 540 else f"{customers}-{DAYS}d"),
        customers=customers,
        world_days=DAYS,
        seed=7,
        engine=engine,
        ray_cpus=cpus,
        ray_memory_mb=store_mb,
        ray_workers=cpus,
        live_apply_process=False,
    )


class RayMemory:
    """Polls the RSS of the Ray processes (workers, raylet, GCS) of this machine every 0.5 s."""

    def __init__(self) -> None:
        self.step = "start"
        self.own_peak: dict[str, int] = {}  # this process's RSS peak during each step of the build
        self.worker_peak = 0
        self.total_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = os.getpid()
        own = psutil.Process(me)
        while not self._stop.wait(0.5):
            rss = own.memory_info().rss
            self.own_peak[self.step] = max(self.own_peak.get(self.step, 0), rss)
            total = 0
            for p in psutil.process_iter(["pid", "cmdline", "memory_info"]):
                cmd = " ".join(p.info["cmdline"] or [])
                if p.info["pid"] == me or not p.info["memory_info"] or ("ray" not in cmd):
                    continue
                rss = p.info["memory_info"].rss
                total += rss
                if "ray::" in cmd:
                    self.worker_peak = max(self.worker_peak, rss)
            self.total_peak = max(self.total_peak, total)

    def __enter__(self) -> RayMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def child_build(customers: int, engine: str, cpus: int, store_mb: int) -> None:
    """One feature build in this process; prints one JSON line."""
    from features.build import write_sources

    settings = settings_for(customers, engine, cpus, store_mb)
    # from nothing: the other engine's build would otherwise lend this one its graph blocks (features/build.py)
    shutil.rmtree(settings.feature_dir, ignore_errors=True)
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    with RayMemory() as ray_mem:

        def progress(step: str) -> None:
            marks.append((step, time.perf_counter()))
            ray_mem.step = step

        report = write_sources(settings, progress)
    total = time.perf_counter() - t0
    steps = {}
    for (name, at), (_, nxt) in zip(marks, [*marks[1:], ("end", t0 + total)], strict=True):
        steps[name] = round(nxt - at, 1)
    out = {
        "engine": engine,
        "seconds": round(total, 1),
        "steps": steps,
        "rows": report.rows,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        # the local build's graph workers (features/graph_pool.py): the biggest one
        "child_peak_gb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2, 2),
        "ray_worker_peak_gb": round(ray_mem.worker_peak / 1024**3, 2),
        # RSS sampled every 0.5 s, so a peak between two samples is missed (the whole-run peak above is exact)
        "step_peak_gb": {k: round(v / 1024**3, 2) for k, v in ray_mem.own_peak.items()},
        "ray_total_peak_gb": round(ray_mem.total_peak / 1024**3, 2),
    }
    print("RESULT " + json.dumps(out), flush=True)


def run_child(args: list[str]) -> dict:
    res = subprocess.run([sys.executable, "-m", "benchmarks.scale", *args], capture_output=True, text=True)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise SystemExit(f"child {args} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")


def child_generate(customers: int) -> None:
    """The company generated from this process (above 200,000 customers in regions, each in a worker process of
    its own: the peak below is then the biggest region worker's); prints one JSON line."""
    from leadscope.synth.regions import write_company

    settings = settings_for(customers, "local", 2, 1024)
    t0 = time.perf_counter()
    write_company(settings.raw_dir, customers=customers, seed=7, end=settings.world_end, days=settings.world_days)
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    out = {"seconds": round(time.perf_counter() - t0, 1), "peak_rss_gb": round(peak / 1024**2, 2)}
    print("RESULT " + json.dumps(out), flush=True)


def company(customers: int) -> None:
    """Generated once, in its own process, so that its memory is not this process's peak."""
    if (settings_for(customers, "local", 2, 1024).raw_dir / "customers.parquet").exists():
        return
    r = run_child(["--customers", str(customers), "--child-generate", "--days", str(DAYS)])
    print(f"generated {customers:,} customers in {r['seconds']:.0f} s, peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)


def training(customers: int, cpus: int, store_mb: int, label_rows: int) -> dict:
    """Holdout AUC of the local and the Ray Train fit of one training frame (the same rows, split and seed)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from features import store as feature_store
    from training import dataset, pipeline, propensity
    from training.classifier import CalibratedLGBMClassifier
    from training.distributed import RayBoost

    settings = settings_for(customers, "local", cpus, store_mb)
    feature_store.apply(settings)  # the registry of the features the builds wrote (historical retrieval reads it)
    labels = dataset.conversion_labels(settings, horizon_days=settings.propensity_horizon_days)
    if len(labels) > label_rows:
        labels = labels.sample(label_rows, random_state=7).sort_index()
    prep = pipeline.prepare(settings, labels, propensity.WITH_GRAPH, horizon_days=settings.propensity_horizon_days)
    df, feats, (tr, va, te) = prep.frame, prep.features, prep.masks
    y = df["label"].to_numpy()
    out = {"label_rows": len(df), "train": int(tr.sum()), "test_positives": int(y[te].sum())}
    for engine, boost in (("local", None), ("ray", RayBoost(settings_for(customers, "ray", cpus, store_mb)))):
        t0 = time.perf_counter()
        model = CalibratedLGBMClassifier(seed=7, monotone=propensity.MONOTONE, boost=boost)
        model.fit(df[tr], y[tr], X_valid=df[va], y_valid=y[va], features=feats)
        p = model.predict_proba(df[te])[:, 1]
        out[engine] = {
            "auc": round(float(roc_auc_score(y[te], p)), 4),
            "seconds": round(time.perf_counter() - t0, 1),
            "best_iteration": int(model.best_iteration_),
        }
        out[f"{engine}_p"] = p
    out["auc_delta"] = round(out["ray"]["auc"] - out["local"]["auc"], 4)
    out["prediction_corr"] = round(float(np.corrcoef(out.pop("local_p"), out.pop("ray_p"))[0, 1]), 4)
    out["scorer"] = model.scorer_  # the Ray-trained scorer scores below
    return out


def scoring(customers: int, cpus: int, store_mb: int, scorer: object, engines: list[str]) -> dict:
    from features.store import open_store
    from leadscope.tables import read_table
    from serving.offline import batch_scores

    out = {}
    ids = read_table(settings_for(customers, "local", cpus, store_mb).raw_dir, "customers")["customer_id"]
    ids = ids.astype(str).tolist()
    for engine in engines:
        settings = settings_for(customers, engine, cpus, store_mb)
        service = open_store(settings).get_feature_service("propensity_v2")
        models = {"propensity": (scorer, service)}
        for reasons in ("none", "top3"):
            t0 = time.perf_counter()
            rows = sum(len(df) for df in batch_scores(settings, models, ids, reasons=reasons, workers=cpus))
            seconds = time.perf_counter() - t0
            out[f"{engine}_{reasons}"] = {"rows_per_s": round(rows / seconds), "seconds": round(seconds, 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--object-store-mb", type=int, default=2048)
    ap.add_argument("--label-rows", type=int, default=400_000)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--days", type=int, default=540, help="history generated, days (at least 150 for labels)")
    ap.add_argument("--engines", default="local,ray", help="local,ray or one of them (10 M: ray alone)")
    ap.add_argument("--child-build", choices=("local", "ray"))
    ap.add_argument("--child-generate", action="store_true")
    args = ap.parse_args()
    global DAYS
    DAYS = args.days
    engines = [e for e in ("ray", "local") if e in args.engines.split(",")]
    if args.child_generate:
        return child_generate(args.customers)
    if args.child_build:
        return child_build(args.customers, args.child_build, args.cpus, args.object_store_mb)
    company(args.customers)
    common = ["--customers", str(args.customers), "--cpus", str(args.cpus)]
    common += ["--object-store-mb", str(args.object_store_mb), "--days", str(args.days)]
    if not args.skip_build:
        builds = {e: run_child([*common, "--child-build", e]) for e in engines}
        for e, r in builds.items():
            print(
                f"feature build {e:5s}: {r['seconds']:7.1f} s, peak RSS {r['peak_rss_gb']:.2f} GB"
                f" (biggest child process {r['child_peak_gb']:.2f} GB)"
                f" (Ray: biggest worker {r['ray_worker_peak_gb']:.2f} GB, all Ray processes"
                f" {r['ray_total_peak_gb']:.2f} GB)"
            )
            print(f"    steps: {r['steps']}")
            print(f"    this process's RSS peak per step (GB): {r['step_peak_gb']}")
        if len(builds) == 2:
            assert builds["ray"]["rows"] == builds["local"]["rows"], (builds["ray"]["rows"], builds["local"]["rows"])
            print(f"    Ray overhead ratio (Ray / local): {builds['ray']['seconds'] / builds['local']['seconds']:.2f}×")
    t = training(args.customers, args.cpus, args.object_store_mb, args.label_rows)
    print(
        f"training on one snapshot ({t['label_rows']:,} label rows, {t['train']:,} train, {t['test_positives']:,} "
        f"holdout positives): local AUC {t['local']['auc']:.4f} in {t['local']['seconds']} s "
        f"(best round {t['local']['best_iteration']}), Ray Train AUC {t['ray']['auc']:.4f} in {t['ray']['seconds']} s "
        f"(best round {t['ray']['best_iteration']}); Δ {t['auc_delta']:+.4f}, prediction correlation "
        f"{t['prediction_corr']}"
    )
    s = scoring(args.customers, args.cpus, args.object_store_mb, t["scorer"], engines)
    for reasons in ("none", "top3"):
        got = {e: s[f"{e}_{reasons}"] for e in engines}
        line = [f"{e} {r['rows_per_s']:,} rows/s ({r['seconds']} s)" for e, r in got.items()]
        if len(engines) == 2:
            line.append(f"Ray overhead ratio {s[f'ray_{reasons}']['seconds'] / s[f'local_{reasons}']['seconds']:.2f}×")
        print(f"batch scoring, reasons {reasons:4s}: " + "; ".join(line), flush=True)
    print(f"this process's peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB")


if __name__ == "__main__":
    main()
