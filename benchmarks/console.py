"""Console pages on the default company (issue #19: every page under 300 ms server time), against the real
server in a child process. Each page is fetched 3 times to warm (the first visit is printed: it may load a
snapshot's population or the identity index), then `--n` times; the figures are loopback round trips (an upper
bound on server time), p50 / p95 / max.

The company is the default one (`leadscope run --skip-serve` on embedded defaults, 20,295 customers), kept in
/tmp/leadscope-console (built on the first run, several minutes).
Usage: python -m benchmarks.console [--n 30]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from benchmarks._load import free_port, start_server

HOME = Path("/tmp/leadscope-console")


def company() -> Path:
    if not (HOME / "ready").exists():
        HOME.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LEADSCOPE_HOME": str(HOME)}
        subprocess.run([str(Path(sys.executable).parent / "leadscope"), "run", "--skip-serve"], env=env, check=True)
        (HOME / "ready").touch()
    return HOME


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args()
    home = company()
    raw = home / "data" / "raw"
    customers = pd.read_parquet(raw / "customers.parquet", columns=["customer_id"])["customer_id"].astype(str)
    stages = pd.read_parquet(raw / "stages.parquet", columns=["customer_id", "stage"])
    won = sorted(set(stages.loc[stages["stage"] == "won", "customer_id"].astype(str)))[:500]
    server = start_server(
        free_port(), cwd=Path.cwd(), env={"LEADSCOPE_HOME": str(home), "LEADSCOPE_LOG_FORMAT": "text"}
    )
    try:
        with httpx.Client(base_url=server.url(""), timeout=300, follow_redirects=True) as c:
            form = c.get("/console/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
            r = c.post("/console/login", data={"api_key": server.token, "csrf": csrf})
            token = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
            t0 = time.perf_counter()
            seed = {"seed_file": ("seed.csv", "customer_id\n" + "\n".join(won))}
            form = {"csrf": token, "percent": "2", "name": "bench"}
            r = c.post("/console/audiences", data=form, files=seed, follow_redirects=False)
            assert r.status_code == 303, r.text[:500]
            build = time.perf_counter() - t0
            audience = r.headers["location"]
            ids = customers.sample(args.n + 3, random_state=1).tolist()
            pages = {
                "lead lookup (a different lead each time)": lambda i: f"/console/leads?q={ids[i]}",
                "audience builder": lambda i: "/console/audiences",
                "size estimate (htmx fragment)": lambda i: f"/console/audiences/estimate?percent={1 + i % 9}",
                "audience insight + export counts": lambda i: audience,
                "insight with a cross-analysis": lambda i: audience + "?cross=source_channel,tenure_days_band",
                "model card (propensity)": lambda i: "/console/models?name=propensity",
                "signals": lambda i: "/console/signals",
            }
            print(f"company: {len(customers):,} customers ({home}); 1 uvicorn worker; {args.n} requests per page")
            print(f"lookalike build from a {len(won)}-id seed through the console: {build * 1000:,.0f} ms (2 %)")
            worst = 0.0
            for name, path in pages.items():
                t = time.perf_counter()
                for i in range(3):
                    assert c.get(path(i)).status_code == 200, path(i)
                    if i == 0:
                        first = (time.perf_counter() - t) * 1000
                took = []
                for i in range(args.n):
                    t = time.perf_counter()
                    r = c.get(path(i + 3))
                    took.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, (path(i + 3), r.status_code)
                a = np.array(took)
                worst = max(worst, a.max())
                print(f"{name:42s} p50 {np.percentile(a, 50):7.1f} ms  p95 {np.percentile(a, 95):7.1f} ms  "
                      f"max {a.max():7.1f} ms  (first visit {first:,.0f} ms)")  # fmt: skip
            print(f"slowest request: {worst:.1f} ms (target: every page under 300 ms)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
