"""`leadscope run --skip-serve` from nothing in a fresh folder, timed step by step, with the memory of its whole
process tree (its steps run in child processes side by side, so one process's peak RSS is not the run's).

Prints every ✓ step line with its seconds, the wall time, the peak of the summed RSS of the tree (sampled every
0.5 s) and the peak RSS of the biggest single process, then the holdout figures the run printed.
Usage: python -m benchmarks.run_job [--customers 200000] [--home /tmp/leadscope-run] [--workers 0]
       [--raw DIR: a generated company's raw tables, copied instead of generating]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path


class TreeMemory:
    """The summed RSS of a process and its descendants, and the biggest one's, every 0.5 s."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.total_peak = 0
        self.single_peak = 0
        self.step_peak: dict[str, int] = {}  # a step's process (python -m leadscope.cli.prepare STEP) at its peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self._stop.wait(0.5):
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes = []
            for p in procs:
                try:
                    rss, cmd = p.memory_info().rss, p.cmdline()
                except psutil.NoSuchProcess:
                    continue
                sizes.append(rss)
                if "leadscope.cli.prepare" in cmd:
                    name = cmd[cmd.index("leadscope.cli.prepare") + 1]
                    self.step_peak[name] = max(self.step_peak.get(name, 0), rss)
            self.total_peak = max(self.total_peak, sum(sizes))
            self.single_peak = max(self.single_peak, max(sizes, default=0))

    def start(self) -> TreeMemory:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--home", type=Path, default=Path("/tmp/leadscope-run"))
    ap.add_argument("--workers", type=int, default=0, help="LEADSCOPE_RUN_WORKERS (0: one per core)")
    ap.add_argument("--raw", type=Path, help="copy these raw tables instead of generating")
    args = ap.parse_args()
    shutil.rmtree(args.home, ignore_errors=True)
    args.home.mkdir(parents=True)
    if args.raw:
        shutil.copytree(args.raw, args.home / "data" / "raw")
    env = os.environ | {
        "LEADSCOPE_CUSTOMERS": str(args.customers),
        "LEADSCOPE_RUN_WORKERS": str(args.workers),
        "COLUMNS": "200",
    }
    exe = Path(sys.executable).with_name("leadscope")
    t0 = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603
        [str(exe), "run", "--skip-serve"], cwd=args.home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    mem = TreeMemory(proc.pid).start()
    out = proc.communicate()[0].decode(errors="replace")
    mem.stop()
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"leadscope run failed ({proc.returncode}):\n{out[-4000:]}")
    print(f"leadscope run --skip-serve, {args.customers:,} customers, LEADSCOPE_RUN_WORKERS={args.workers}")
    for line in out.splitlines():
        if re.match(r"^✓ .*\(\d+\.\d s\)$", line):
            print("  " + line)
    print(f"  wall time {wall:.1f} s ({wall / 60:.1f} min)")
    print(f"  peak RSS, the whole process tree: {mem.total_peak / 1024**3:.2f} GiB")
    print(f"  peak RSS, the biggest single process: {mem.single_peak / 1024**3:.2f} GiB")
    if mem.step_peak:
        steps = ", ".join(f"{k} {v / 1024**3:.2f} GiB" for k, v in mem.step_peak.items())
        print(f"  peak RSS per step process: {steps}")
    for line in out.splitlines():
        if "holdout ROC-AUC" in line or line.strip().startswith("ours "):
            print("  " + line.strip())


if __name__ == "__main__":
    main()
