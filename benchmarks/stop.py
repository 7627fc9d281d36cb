"""The default `leadscope serve` at rest: the memory of all its processes (the worker, the applier child, the intake
process) once ready, and the time from SIGTERM to exit when idle, with what it logs while stopping.

Usage: python -m benchmarks.stop [--rounds 3] [--idle 2]
Needs a prepared embedded setup in the working directory or LEADSCOPE_HOME (`make run` once, or
`leadscope run --skip-serve`). Two checkouts side by side: python -m benchmarks.side_by_side --base OTHER "stop".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from benchmarks._load import free_port

NOISE = (" warning ", " error ", "traceback", "incompletereaderror")  # levels as the text log writes them


def _ready(port: int, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"leadscope serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                body = json.loads(r.read())
                if not body.get("warming") and "starting" not in (body.get("live_applier"), body.get("live_intake")):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("leadscope serve did not become ready in time")


def one(idle: float) -> dict:
    port = free_port()
    log = tempfile.TemporaryFile()
    leadscope = Path(sys.executable).with_name("leadscope")
    proc = subprocess.Popen(
        [str(leadscope), "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "LEADSCOPE_LOG_FORMAT": "text"},
    )
    try:
        _ready(port, proc)
        time.sleep(idle)
        procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        rss = {f"{p.pid} {' '.join(p.cmdline()[1:3])[:40]}": p.memory_info().rss / 2**20 for p in procs}
        log.seek(0, os.SEEK_END)
        before_stop = log.tell()
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        took = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log.seek(before_stop)
    lines = log.read().decode(errors="replace").splitlines()
    if os.environ.get("LEADSCOPE_BENCH_SHOW_LOG"):
        print("\n".join(lines))
    noisy = [line for line in lines if any(w in f" {line.lower()} " for w in NOISE)]
    return {"stop_s": took, "rss": rss, "noisy": noisy}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=float, default=2.0, help="Seconds idle after ready, before SIGTERM.")
    args = ap.parse_args()
    runs = [one(args.idle) for _ in range(args.rounds)]
    stops = sorted(r["stop_s"] for r in runs)
    totals = sorted(sum(r["rss"].values()) for r in runs)
    print(f"default `leadscope serve`, 1 worker, idle {args.idle:.0f} s after ready, {args.rounds} rounds")
    mid = stops[len(stops) // 2]
    print(f"SIGTERM to exit:            median {mid:.2f} s  (min {stops[0]:.2f}, max {stops[-1]:.2f})")
    print(f"RSS of all its processes:   median {totals[len(totals) // 2]:,.0f} MiB")
    for name, mib in runs[-1]["rss"].items():
        print(f"  {name:<46} {mib:7,.0f} MiB")
    noisy = sorted({line.split("] ")[-1][:160] for r in runs for line in r["noisy"]})
    print(f"lines logged while stopping that read as warnings or errors: {len(noisy)}")
    for line in noisy[:10]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
