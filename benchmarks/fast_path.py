"""Does the fast path (serving/fastpath.py: valid small POST /v1/scores answered before FastAPI's routing) earn
its place? The same server with it on and off, interleaved (on, off, on, off, …) in one run, each round a fresh
server: POST /v1/scores (1 id, with reasons, the cache prewarmed) next to GET /healthz of the same server.

Usage: python -m benchmarks.fast_path [--rounds 3] [--seconds 8] [--concurrency 8]
Needs a prepared embedded setup (`make run` once, or `leadscope run --skip-serve`). The verdict compares the
difference of the medians with the run-to-run noise (the widest spread of one setting's rounds).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks._load import free_port, interleaved_args, start_server
from benchmarks.load import bodies, run_routes
from leadscope.settings import Settings


def one(on: bool, payloads: list[bytes], concurrency: int, seconds: float) -> tuple[float, float, float]:
    flag = "true" if on else "false"
    server = start_server(free_port(), cwd=Path.cwd(), env={"LEADSCOPE_SCORES_FAST_PATH": flag})
    try:
        run_routes(server, payloads, concurrency, 2)  # warm-up
        healthz, _, scores = run_routes(server, payloads, concurrency, seconds)
    finally:
        server.stop()
    return scores.rps, scores.pct(99), healthz.rps


def main() -> None:
    args = interleaved_args(__doc__)
    payloads = bodies(Settings())
    got: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    for r in range(args.rounds):
        for on in (True, False) if r % 2 == 0 else (False, True):
            got[on].append(one(on, payloads, args.concurrency, args.seconds))
            rps, p99, hz = got[on][-1]
            print(f"round {r + 1} fast path {'on ' if on else 'off'}: scores {rps:7.0f} req/s  p99 {p99:6.2f} ms  "
                  f"({rps / hz:.1%} of /healthz {hz:.0f} req/s)")  # fmt: skip
    med = {on: statistics.median(x[0] for x in got[on]) for on in got}
    share = {on: statistics.median(x[0] / x[2] for x in got[on]) for on in got}
    noise = max(max(x[0] for x in got[on]) - min(x[0] for x in got[on]) for on in got)
    diff = med[True] - med[False]
    print(f"median scores req/s: on {med[True]:.0f} ({share[True]:.1%} of /healthz), "
          f"off {med[False]:.0f} ({share[False]:.1%})")  # fmt: skip
    print(f"difference {diff:+.0f} req/s ({diff / med[False]:+.1%}); noise (widest spread of one setting) {noise:.0f}")
    print("verdict: the fast path " + ("wins beyond the noise" if diff > noise else "does not win beyond the noise"))


if __name__ == "__main__":
    main()
