"""POST /v1/scores (1 id, with reasons) next to GET /healthz of the same app, in one run.

Usage: python benchmarks/score_latency.py [--seconds 10] [--concurrency 8]
Needs a prepared embedded setup (`make run` once, or `leadscope run --skip-serve`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pandas as pd

from benchmarks._load import drive, free_port, start_server
from leadscope.settings import get_settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    settings = get_settings()
    ids = pd.read_parquet(settings.raw_dir / "customers.parquet", columns=["customer_id"])["customer_id"]
    ids = ids.sample(5000, random_state=0).tolist()
    bodies = [json.dumps({"customer_ids": [i]}).encode() for i in ids]
    port = free_port()
    proc = start_server(port, cwd=Path.cwd())
    try:
        base = f"http://127.0.0.1:{port}"
        # warm-up, then the two endpoints back to back under the same load generator
        asyncio.run(
            drive(
                "warmup",
                f"{base}/v1/scores",
                method="POST",
                body=lambda i: bodies[i % len(bodies)],
                concurrency=args.concurrency,
                seconds=2,
            )
        )
        one = lambda i: bodies[i % len(bodies)]  # noqa: E731
        routes = [
            ("GET /healthz", "/healthz", "GET", lambda i: None),
            ("POST /bench/echo (1 id)", "/bench/echo", "POST", one),
            ("POST /v1/scores (1 id)", "/v1/scores", "POST", one),
        ]
        trivial, echo, scores = (
            asyncio.run(drive(name, base + path, method=m, body=b, concurrency=args.concurrency, seconds=args.seconds))
            for name, path, m, b in routes
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"concurrency {args.concurrency}, {args.seconds:.0f} s each, 1 uvicorn worker, loopback")
    for r in (trivial, echo, scores):
        print(r.row())
    print(f"ratio scores / GET /healthz requests/s:        {scores.rps / trivial.rps:.1%}")
    print(f"ratio scores / POST echo (same body) requests/s: {scores.rps / echo.rps:.1%}")
    print(f"target: >= 25% of the trivial endpoint, p99 < 25 ms (scores p99 here {scores.pct(99):.2f} ms)")


if __name__ == "__main__":
    main()
