"""Feature build at scale: our feature functions vs the same core aggregation in DuckDB SQL, one run.

1,000,000 customers, 10,000,000 transactions, 20,000,000 engagement events (synthetic, seeded), features as of
one cut (the online snapshot). Each side runs in its own process from the same parquet files; printed: wall
time, peak RSS, and the ratio. Usage: python -m benchmarks.feature_build [--customers N] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import resource
import time
from multiprocessing import Queue
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._load import run_phases

END = pd.Timestamp("2026-06-30", tz="UTC")
DAYS = 540


def make(out: Path, n: int, n_tx: int, n_ev: int, seed: int = 0) -> None:
    from features.engineering import EVENT_TYPES

    rng = np.random.default_rng(seed)
    ids = pd.Series([f"C{i:07d}" for i in range(n)])
    created = END - pd.to_timedelta(rng.uniform(0, DAYS, n), unit="D")
    pd.DataFrame({"customer_id": ids, "created_at": created}).to_parquet(out / "customers.parquet")
    weight = rng.pareto(1.5, n) + 1  # heavy-tailed activity per customer
    p = weight / weight.sum()
    for name, m in (("transactions", n_tx), ("events", n_ev)):
        who = rng.choice(n, m, p=p)
        age = (END - created[who]).total_seconds().to_numpy()
        ts = END - pd.to_timedelta(rng.random(m) * age, unit="s")
        df = pd.DataFrame({"customer_id": pd.Categorical.from_codes(who, ids), "ts": ts})
        if name == "transactions":
            df["amount"] = np.round(rng.lognormal(3.5, 1.0, m), 2)
            df["category"] = rng.choice(["core", "accessories", "premium", "promo"], m)
            df["is_refund"] = rng.random(m) < 0.03
        else:
            df["event_type"] = pd.Categorical(rng.choice(EVENT_TYPES, m))
        df.to_parquet(out / f"{name}.parquet")


def ours(out: Path, q: Queue) -> None:
    from features import engineering

    t0 = time.perf_counter()
    cust = pd.read_parquet(out / "customers.parquet")
    tx = pd.read_parquet(out / "transactions.parquet")  # ids arrive dictionary-encoded (categorical)
    ev = pd.read_parquet(out / "events.parquet")
    cuts = pd.DatetimeIndex([END])
    a = engineering.transaction_features(tx, cust, cuts)
    b = engineering.engagement_features(ev, cust, cuts)
    q.put(("ours: transaction + engagement features", time.perf_counter() - t0, _peak(), a.shape[1] + b.shape[1]))


def duckdb_reference(out: Path, q: Queue) -> None:
    import duckdb

    from features.engineering import EVENT_TYPES, TX_WINDOWS, WINDOWS

    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    cut = "TIMESTAMPTZ '2026-06-30 00:00:00+00'"
    ev_cols = (
        ",\n".join(
            f"count(*) FILTER (WHERE event_type = '{e}' AND ts > {cut} - INTERVAL {w} DAY) AS {e}_{w}d"
            for e in EVENT_TYPES
            for w in WINDOWS
        )
        + ",\n"
        + ",\n".join(f"count(*) FILTER (WHERE event_type = '{e}') AS {e}_total" for e in EVENT_TYPES)
    )
    tx_cols = ",\n".join(
        f"count(*) FILTER (WHERE NOT is_refund AND ts > {cut} - INTERVAL {w} DAY) AS tx_count_{w}d, "
        f"sum(CASE WHEN is_refund THEN -amount ELSE amount END) FILTER (WHERE ts > {cut} - INTERVAL {w} DAY) "
        f"AS tx_amount_{w}d"
        for w in TX_WINDOWS
    )
    sql = f"""
    WITH e AS (SELECT customer_id::VARCHAR AS customer_id, event_type::VARCHAR AS event_type, ts
               FROM '{out}/events.parquet' WHERE ts <= {cut}),
    t AS (SELECT customer_id::VARCHAR AS customer_id, ts, amount, is_refund, category
          FROM '{out}/transactions.parquet' WHERE ts <= {cut}),
    ef AS (SELECT customer_id, {ev_cols},
                  date_diff('second', max(ts) FILTER (WHERE event_type <> 'email_sent'), {cut}) / 86400.0
                  AS days_since_last_touch
           FROM e GROUP BY customer_id),
    tf AS (SELECT customer_id, count(*) FILTER (WHERE NOT is_refund) AS tx_count_total,
                  sum(CASE WHEN is_refund THEN -amount ELSE amount END) AS tx_amount_total,
                  count(DISTINCT category) FILTER (WHERE NOT is_refund) AS tx_category_diversity,
                  date_diff('second', max(ts) FILTER (WHERE NOT is_refund), {cut}) / 86400.0 AS tx_recency_days,
                  {tx_cols}
           FROM t GROUP BY customer_id)
    SELECT c.customer_id, ef.*, tf.* FROM '{out}/customers.parquet' c
    LEFT JOIN ef USING (customer_id) LEFT JOIN tf USING (customer_id) WHERE c.created_at <= {cut}
    """
    df = con.execute(sql).df()
    q.put(("DuckDB SQL: same core aggregation", time.perf_counter() - t0, _peak(), df.shape[1]))


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies 10M transactions and 20M events")
    ap.add_argument("--work", type=Path, default=Path("data/bench_features"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    n_tx, n_ev = int(10_000_000 * args.scale), int(20_000_000 * args.scale)
    t0 = time.perf_counter()
    make(args.work, args.customers, n_tx, n_ev)
    print(
        f"inputs: {args.customers:,} customers, {n_tx:,} transactions, {n_ev:,} events "
        f"(made in {time.perf_counter() - t0:.0f} s)"
    )
    res = run_phases([ours, duckdb_reference], args.work)
    for name, secs, peak, cols in res.values():
        print(f"{name:<45} {secs:7.1f} s   peak {peak:5.1f} GiB   {cols} columns")
    res = {k: v[1] for k, v in res.items()}
    print(f"ratio ours / DuckDB: {res['ours'] / res['duckdb_reference']:.2f}x   (target <= 2x, peak < 16 GiB)")


if __name__ == "__main__":
    main()
