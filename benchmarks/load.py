"""Load and soak: POST /v1/scores (1 id, with reasons) beside GET /healthz and a same-body echo, at several
concurrencies, in one run; optionally a soak that samples the server's memory.

Usage: python -m benchmarks.load [--seconds 10] [--concurrency 1 8 32] [--workers 1] [--soak 300]
Needs a prepared embedded setup (`make run` once, or `leadscope run --skip-serve`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

from benchmarks._load import Result, Server, drive, free_port, start_server
from leadscope.settings import Settings


def bodies(settings: Settings, n: int = 5000) -> list[bytes]:  # noqa: D103
    ids = pd.read_parquet(settings.raw_dir / "customers.parquet", columns=["customer_id"])["customer_id"]
    return [json.dumps({"customer_ids": [i]}).encode() for i in ids.sample(min(n, len(ids)), random_state=0)]


def run_routes(server: Server, payloads: list[bytes], concurrency: int, seconds: float) -> list[Result]:
    one = lambda i: payloads[i % len(payloads)]  # noqa: E731
    routes = [
        ("GET /healthz", "/healthz", "GET", lambda i: None),
        ("POST /bench/echo (1 id)", "/bench/echo", "POST", one),
        ("POST /v1/scores (1 id)", "/v1/scores", "POST", one),
    ]
    return [
        asyncio.run(
            drive(
                name,
                server.url(path),
                method=m,
                body=b,
                concurrency=concurrency,
                seconds=seconds,
                headers=server.headers,
            )
        )
        for name, path, m, b in routes
    ]


def rss(proc: psutil.Process) -> int:
    """Resident memory of the server and its worker processes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def soak(server: Server, payloads: list[bytes], seconds: float, concurrency: int = 8) -> None:
    """Drive /v1/scores for `seconds`, sampling RSS every 5 s; growth is measured from the end of the first minute
    (warm caches, allocator arenas settled) to the end."""
    proc = psutil.Process(server.proc.pid)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.perf_counter()
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, rss(proc)))
            stop.wait(5)

    th = threading.Thread(target=sample)
    th.start()
    try:
        res = asyncio.run(
            drive(
                "soak POST /v1/scores",
                server.url("/v1/scores"),
                method="POST",
                body=lambda i: payloads[i % len(payloads)],
                concurrency=concurrency,
                seconds=seconds,
                max_requests=50_000_000,
                headers=server.headers,
            )
        )
    finally:
        stop.set()
        th.join()
    base = next((m for t, m in samples if t >= min(60, seconds / 5)), samples[0][1])
    end = samples[-1][1]
    print(res.row())
    print(
        f"soak {seconds:.0f} s: RSS after warm-up {base / 2**20:.1f} MiB, at end {end / 2**20:.1f} MiB, "
        f"peak {max(m for _, m in samples) / 2**20:.1f} MiB, growth {(end - base) / base:+.2%} (target < 5%)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--soak", type=float, default=0.0, help="Seconds of soak after the load phases (0: none).")
    ap.add_argument("--ids", type=int, default=5000, help="Distinct customer ids the requests cycle through.")
    ap.add_argument(
        "--cache",
        choices=["warm", "off"],
        default="warm",
        help="warm: the server's feature-row cache on and every id read once before measuring; off: every request "
        "reads Feast's online store.",
    )
    args = ap.parse_args()
    settings = Settings()
    payloads = bodies(settings, args.ids)
    env = {"LEADSCOPE_FEATURE_CACHE_SIZE": "0"} if args.cache == "off" else {}
    server = start_server(free_port(), cwd=Path.cwd(), workers=args.workers, env=env)
    try:
        run_routes(server, payloads, 8, 2)  # warm-up
        if args.cache == "warm":
            asyncio.run(
                drive(
                    "warm",
                    server.url("/v1/scores"),
                    method="POST",
                    body=lambda i: payloads[i % len(payloads)],
                    concurrency=8,
                    seconds=600,
                    max_requests=len(payloads) * 2,
                    headers=server.headers,
                )
            )
        print(
            f"{args.workers} uvicorn worker(s), loopback, {args.seconds:.0f} s per route and concurrency, "
            f"{len(payloads):,} distinct ids, feature cache {args.cache}"
        )
        for c in args.concurrency:
            trivial, echo, scores = run_routes(server, payloads, c, args.seconds)
            print(f"-- concurrency {c}")
            for r in (trivial, echo, scores):
                print(r.row())
            print(
                f"   scores/healthz {scores.rps / trivial.rps:.1%}, scores/echo {scores.rps / echo.rps:.1%}, "
                f"scores per worker {scores.rps / args.workers:.0f} req/s"
            )
        if args.soak:
            soak(server, payloads, args.soak)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
