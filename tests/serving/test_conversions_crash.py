"""Crash safety: SIGKILL the server while CRMs post conversion events, restart it, and check that every event
that got a 202 is stored exactly once and, after `leadscope signals deliver`, delivered exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
from sqlalchemy import func, select

from benchmarks._load import api_key, free_port
from serving.signals.ingest import outbox_for
from serving.signals.outbox import deliveries, events
from tests.fakes.ad_platforms import FakePlatforms
from tests.serving.test_conversions import TOKENS, make_events

ROOT = Path(__file__).resolve().parents[2]


def _start(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadscope.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server not ready")


def test_sigkill_while_posting_loses_no_acknowledged_event_and_delivers_each_once(prepared, tmp_path) -> None:
    # broken: a crash between "202 Accepted" and the disk would silently lose a won deal's signal
    svc = tmp_path / "svc"
    svc.mkdir()
    for name in ("raw", "features", "feature_repo"):
        (svc / name).symlink_to(prepared.settings.resolve(prepared.settings.data_dir) / name)
    with FakePlatforms() as fake:
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text(fake.mapping_yaml())
        overrides = {
            "LEADSCOPE_HOME": str(prepared.settings.home),
            "LEADSCOPE_DATA_DIR": str(svc),
            "LEADSCOPE_SIGNALS_MAPPING": str(mapping),
            "LEADSCOPE_LOG_FORMAT": "text",
            **TOKENS,
        }
        env = {**os.environ, **overrides}
        token = api_key(overrides, ("conversions",))
        customers = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet")
        batches = [make_events(customers.sample(25, random_state=b), 25, f"k{b}") for b in range(400)]
        acked: set[str] = set()
        posted = threading.Event()
        stop = threading.Event()
        port = free_port()
        proc = _start(env, port)

        def post(worker: int) -> None:
            with httpx.Client(headers={"authorization": f"Bearer {token}"}, timeout=10) as c:
                for b in range(worker, len(batches), 2):
                    if stop.is_set():
                        return
                    try:
                        r = c.post(f"http://127.0.0.1:{port}/v1/conversions", json={"events": batches[b]})
                    except httpx.HTTPError:
                        return  # the server is gone: these events were never acknowledged
                    if r.status_code == 202:
                        acked.update(e["event_id"] for e in batches[b])
                        posted.set()

        threads = [threading.Thread(target=post, args=(w,)) for w in range(2)]
        for t in threads:
            t.start()
        assert posted.wait(60)
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join(30)
        before_restart = set(acked)
        assert 25 <= len(before_restart) < 400 * 25, len(before_restart)

        proc = _start(env, port)
        try:
            with httpx.Client(headers={"authorization": f"Bearer {token}"}, timeout=30) as c:
                retried = 0
                for batch in batches[:40]:  # the CRM retries what it is not sure of: duplicates are recognised
                    r = c.post(f"http://127.0.0.1:{port}/v1/conversions", json={"events": batch})
                    assert r.status_code == 202
                    retried += len(r.json()["duplicates"])
                    acked.update(e["event_id"] for e in batch)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        assert retried > 0

        from leadscope.settings import Settings

        settings = Settings(home=prepared.settings.home, data_dir=svc, signals_mapping=mapping)
        outbox = outbox_for(settings)
        with outbox.engine.connect() as c:
            stored = {r[0] for r in c.execute(select(events.c.event_id))}
            per_id = c.execute(select(func.count(), func.count(func.distinct(events.c.event_id)))).one()
        assert before_restart <= stored and acked <= stored and per_id[0] == per_id[1]
        with outbox.engine.connect() as c:
            pending = c.execute(
                select(deliveries.c.platform, deliveries.c.event_id).where(deliveries.c.status == "pending")
            ).all()
        res = subprocess.run(
            [sys.executable, "-m", "leadscope.cli", "signals", "deliver", "--max-seconds", "120"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        assert fake.violations == []
        assert all(n == 1 for n in fake.received.values())
        sent = sum(fake.received.values())
        assert sent == len(pending) and all(s.get("pending", 0) == 0 for s in outbox.status().values())
        print(
            f"\nSIGKILL test: {len(before_restart):,} events acknowledged before the kill, {len(stored):,} stored, "
            f"{retried} re-posted duplicates recognised, {sent:,} platform rows delivered once each"
        )
