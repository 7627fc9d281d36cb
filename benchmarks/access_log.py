"""What the access log costs: warm POST /v1/scores (1 id, with reasons) with LEADSCOPE_ACCESS_LOG all, errors and
off, interleaved in one run, each round a fresh server logging at INFO in JSON to a file (as a service writes to
its journal).

Usage: python -m benchmarks.access_log [--rounds 3] [--seconds 8] [--concurrency 8]
Needs a prepared embedded setup (`make run` once, or `leadscope run --skip-serve`).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks._load import free_port, interleaved_args, start_server
from benchmarks.load import bodies, run_routes
from leadscope.settings import Settings

MODES = ("all", "errors", "off")


def one(mode: str, payloads: list[bytes], concurrency: int, seconds: float) -> float:
    env = {"LEADSCOPE_ACCESS_LOG": mode, "LEADSCOPE_BENCH_LOG_LEVEL": "20"}
    server = start_server(free_port(), cwd=Path.cwd(), env=env)
    try:
        run_routes(server, payloads, concurrency, 2)  # warm-up
        _, _, scores = run_routes(server, payloads, concurrency, seconds)
    finally:
        server.stop()
    return scores.rps


def main() -> None:
    args = interleaved_args(__doc__)
    payloads = bodies(Settings())
    got: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(args.rounds):
        for mode in MODES if r % 2 == 0 else tuple(reversed(MODES)):
            got[mode].append(one(mode, payloads, args.concurrency, args.seconds))
            print(f"round {r + 1} access log {mode:<6}: scores {got[mode][-1]:7.0f} req/s")
    off = statistics.median(got["off"])
    noise = max(max(v) - min(v) for v in got.values())
    for mode in MODES:
        med = statistics.median(got[mode])
        print(f"median {mode:<6} {med:7.0f} req/s  cost {1 - med / off:+.1%} of the throughput without it")
    print(f"noise (widest spread of one setting): {noise:.0f} req/s ({noise / off:.1%})")


if __name__ == "__main__":
    main()
