"""POST /v1/scores (1 id, with reasons) next to GET /healthz of the same app, in one run (concurrency 8).

Usage: python -m benchmarks.score_latency [--seconds 10] [--concurrency 8]
Needs a prepared embedded setup (`make run` once, or `leadscope run --skip-serve`).
benchmarks/load.py runs the same phases at several concurrencies, with more workers and a soak.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks._load import free_port, start_server
from benchmarks.load import bodies, run_routes
from leadscope.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    payloads = bodies(Settings())
    server = start_server(free_port(), cwd=Path.cwd())
    try:
        run_routes(server, payloads, args.concurrency, 2)  # warm-up
        trivial, echo, scores = run_routes(server, payloads, args.concurrency, args.seconds)
    finally:
        server.stop()
    print(f"concurrency {args.concurrency}, {args.seconds:.0f} s each, 1 uvicorn worker, loopback")
    for r in (trivial, echo, scores):
        print(r.row())
    print(f"ratio scores / GET /healthz requests/s:        {scores.rps / trivial.rps:.1%}")
    print(f"ratio scores / POST echo (same body) requests/s: {scores.rps / echo.rps:.1%}")
    print(f"target: >= 25% of the trivial endpoint, p99 < 25 ms (scores p99 here {scores.pct(99):.2f} ms)")


if __name__ == "__main__":
    main()
