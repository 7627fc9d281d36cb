"""Conversion signals: sustained ingest (HTTP, each batch fsync'ed before its 202) and delivery throughput to a
local fake of Meta, Google Ads and Baidu, in one run.

Usage: python -m benchmarks.conversions [--seconds 20] [--batch 100] [--concurrency 4]
Needs a prepared embedded setup (`make run` once, or `leadscope run --skip-serve`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

from benchmarks._load import drive, free_port, start_server
from leadscope.settings import Settings
from serving.signals.ingest import outbox_for
from tests.fakes.ad_platforms import FakePlatforms
from tests.serving.test_conversions import TOKENS, make_events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=100, help="Events per POST.")
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    base = Settings()
    customers = pd.read_parquet(base.raw_dir / "customers.parquet")
    svc = Path(tempfile.mkdtemp(prefix="leadscope-bench-conv-"))
    for name in ("raw", "features", "feature_repo"):
        (svc / name).symlink_to(base.resolve(base.data_dir) / name)
    with FakePlatforms() as fake:
        mapping = svc / "mapping.yaml"
        mapping.write_text(fake.mapping_yaml())
        env = {"LEADSCOPE_DATA_DIR": str(svc), "LEADSCOPE_SIGNALS_MAPPING": str(mapping), **TOKENS}
        os.environ.update(env)
        template = make_events(customers, 5000, "t")
        counter = itertools.count()

        def body(_: int) -> bytes:
            n = next(counter)
            events = [
                {**template[(n * args.batch + j) % len(template)], "event_id": f"b{n}-{j}"} for j in range(args.batch)
            ]
            return json.dumps({"events": events}).encode()

        server = start_server(free_port(), cwd=Path.cwd(), env=env)
        try:
            ingest = asyncio.run(
                drive(
                    f"POST /v1/conversions ({args.batch} events)",
                    server.url("/v1/conversions"),
                    method="POST",
                    body=body,
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    headers=server.headers,
                )
            )
        finally:
            server.stop()
        settings = Settings(data_dir=svc, signals_mapping=mapping)
        outbox = outbox_for(settings)
        pending = sum(s.get("pending", 0) for s in outbox.status().values())
        t0 = time.perf_counter()
        with httpx.Client() as client:
            outbox.deliver(client, until_empty=True, max_seconds=1800)
        dt = time.perf_counter() - t0
        sent = sum(fake.received.values())
    print(f"ingest: SQLite WAL, synchronous=FULL (fsync per commit), concurrency {args.concurrency}, loopback")
    print(ingest.row())
    print(f"  = {ingest.rps * args.batch:,.0f} events/s stored durably (errors {ingest.errors})")
    print(
        f"delivery: {pending:,} platform rows pending → {sent:,} accepted by the fake platforms in {dt:.1f} s "
        f"= {sent / dt:,.0f} rows/s (Meta 1,000 / Google 2,000 / Baidu 99 per call); violations {len(fake.violations)}"
    )


if __name__ == "__main__":
    main()
