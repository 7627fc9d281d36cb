"""Benchmarks of two checkouts in one run, interleaved (A, B, A, B, …) on the same prepared data, so that a
refactoring can show it changed no figure beyond noise.

Usage: python -m benchmarks.side_by_side --base /path/to/other/checkout [--head PATH] [--rounds 2] [bench ...]
  bench: module names under benchmarks/ with their arguments, e.g. "score_latency --seconds 10" "nba".
Both checkouts run with this venv's packages and their own source tree first on PYTHONPATH; LEADSCOPE_HOME (the
prepared company) is shared. Each benchmark's own output is printed under a header naming checkout and round.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
DEFAULT = ["score_latency --seconds 10", "lookalike", "nba"]


def run(tree: Path, bench: str) -> str:
    name, *args = shlex.split(bench)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args], cwd=tree, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        return f"(failed, exit {proc.returncode})\n{proc.stderr[-3000:]}"
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True, help="The other checkout (e.g. a git worktree of main).")
    ap.add_argument("--head", type=Path, default=HERE, help="The checkout to compare (default: this one).")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("bench", nargs="*", default=DEFAULT)
    args = ap.parse_args()
    trees = {"base": args.base.resolve(), "head": args.head.resolve()}
    for bench in args.bench:
        for r in range(1, args.rounds + 1):
            for label, tree in trees.items():
                print(f"=== {bench} · {label} ({tree}) · round {r}", flush=True)
                print(run(tree, bench).rstrip(), flush=True)


if __name__ == "__main__":
    main()
