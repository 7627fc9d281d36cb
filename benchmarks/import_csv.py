"""Importing a big company from CSV: 1,000,000 customers + 10,000,000 transactions through `leadscope import`'s
code path (parse by the data contract, validate, upsert, commit), side by side with DuckDB's read_csv of the same
files in the same run, each in its own process (peak memory per process).

The files are written once into --work (kept for later runs): text everywhere, mixed boolean spellings and
time-zone suffixes, as a CRM export would be. Target: leadscope's import ≤ 3× DuckDB's read. The two alternate
--repeat times (a shared 2-core machine varies by ±20 % from run to run): each run is printed, and the ratio of
the medians.
Usage: python -m benchmarks.import_csv [--customers 1000000] [--transactions 10000000] [--repeat 3]
       [--work /tmp/leadscope-import]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._load import run_phases

FILES = "LEADSCOPE_BENCH_FILES"  # the two paths, handed to the spawned phases through the environment


def write_files(work: Path, customers: int, transactions: int) -> tuple[Path, Path]:
    cust, tx = work / f"customers_{customers}.csv", work / f"transactions_{transactions}.csv"
    rng = np.random.default_rng(0)
    if not cust.exists():
        ids = np.char.add("C", np.arange(customers).astype(str))
        created = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 700 * 86400, customers), "s")
        pd.DataFrame(
            {
                "customer_id": ids,
                "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "consent_ads": rng.choice(["true", "False", "1", "no", "yes", ""], customers),
                "plan": rng.choice(["basic", "plus", "pro"], customers),
                "monthly_charges": np.round(rng.gamma(2, 30, customers), 2).astype(str),
            }
        ).to_csv(cust, index=False)
    if not tx.exists():
        with open(tx, "w") as fh:
            fh.write("transaction_id,customer_id,ts,amount,category,is_refund\n")
        chunk = 2_000_000
        for start in range(0, transactions, chunk):
            n = min(chunk, transactions - start)
            ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 700 * 86400, n), "s")
            pd.DataFrame(
                {
                    "transaction_id": np.char.add("T", np.arange(start, start + n).astype(str)),
                    "customer_id": np.char.add("C", rng.integers(0, customers, n).astype(str)),
                    "ts": ts.strftime("%Y-%m-%dT%H:%M:%S") + rng.choice(["Z", "+00:00", ""], n),
                    "amount": np.round(rng.gamma(2, 40, n), 2).astype(str),
                    "category": rng.choice(["core", "promo", "addon"], n),
                    "is_refund": rng.choice(["false", "False", "0", "true"], n, p=[0.4, 0.3, 0.25, 0.05]),
                }
            ).to_csv(tx, index=False, header=False, mode="a")
    return cust, tx


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def leadscope_import(work: Path, q) -> None:  # noqa: ANN001 - multiprocessing queue
    import shutil

    from features.ingest import import_files

    cust, tx = os.environ[FILES].split("|")
    raw = work / "raw"
    shutil.rmtree(raw, ignore_errors=True)
    t0 = time.perf_counter()
    out = import_files(raw, {"customers": Path(cust), "transactions": Path(tx)})
    seconds = time.perf_counter() - t0
    q.put(("leadscope import (parse, validate, store)", seconds, _peak_mib(), sum(o.accepted for o in out)))


def duckdb_read(work: Path, q) -> None:  # noqa: ANN001
    import duckdb

    cust, tx = os.environ[FILES].split("|")
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"CREATE TABLE c AS SELECT * FROM read_csv('{cust}')")
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{tx}')")
    rows = con.execute("SELECT (SELECT count(*) FROM c) + (SELECT count(*) FROM t)").fetchone()[0]
    q.put(("duckdb read_csv (both files)", time.perf_counter() - t0, _peak_mib(), rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--transactions", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/leadscope-import"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cust, tx = write_files(args.work, args.customers, args.transactions)
    print(
        f"files: {cust.stat().st_size / 1e6:,.0f} MB + {tx.stat().st_size / 1e6:,.0f} MB "
        f"(ready in {time.perf_counter() - t0:.0f} s)"
    )
    os.environ[FILES] = f"{cust}|{tx}"
    runs: dict[str, list[float]] = {"duckdb_read": [], "leadscope_import": []}
    for _ in range(args.repeat):
        res = run_phases([duckdb_read, leadscope_import], args.work)
        for phase, (name, seconds, peak, rows) in res.items():
            runs[phase].append(seconds)
            print(f"{name:<45} {seconds:8.1f} s   {rows / seconds:12,.0f} rows/s   peak RSS {peak:8,.0f} MiB")
    duck, ours = statistics.median(runs["duckdb_read"]), statistics.median(runs["leadscope_import"])
    print(f"median of {args.repeat}: duckdb {duck:.1f} s, leadscope {ours:.1f} s")
    print(f"ratio leadscope / duckdb (medians): {ours / duck:.1f}× (target ≤ 3×)")


if __name__ == "__main__":
    main()
