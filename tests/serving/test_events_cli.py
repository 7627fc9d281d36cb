"""`leadscope events post` and `leadscope webhooks`: the CLI path of the real-time loop."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from features import live
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.serving.test_events import _open_leads

ROOT = Path(__file__).resolve().parents[2]


def _cli(settings, *args: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    env = {**os.environ, "LEADSCOPE_HOME": str(settings.home)}
    return subprocess.run(
        [sys.executable, "-m", "leadscope.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _count(settings) -> int:  # noqa: ANN001
    with live.LiveLog(settings.database_url).engine.connect() as c:
        return c.execute(select(func.count()).select_from(live.records)).scalar()


def test_events_post_stores_and_applies_a_csv_and_refuses_a_bad_one_whole(live_company, tmp_path) -> None:
    settings = live_company.settings
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    lead = _open_leads(settings)[5]
    rows = [
        {"id": f"{tag}-c", "type": "customer", "customer_id": f"CLI-{tag}", "ts": now.isoformat(), "country": "FR"},
        {
            "id": f"{tag}-1",
            "type": "event",
            "customer_id": f"CLI-{tag}",
            "ts": now.isoformat(),
            "channel": "web",
            "event_type": "pricing_view",
        },
        {
            "id": f"{tag}-2",
            "type": "order",
            "customer_id": lead,
            "ts": (now - timedelta(hours=1)).isoformat(),
            "amount": "99.5",
            "category": "software",
        },
    ]
    good = tmp_path / "records.csv"
    pd.DataFrame(rows).to_csv(good, index=False)
    bad = tmp_path / "bad.csv"
    pd.DataFrame([*rows[:2], {**rows[2], "id": f"{tag}-3", "amount": "lots"}]).to_csv(bad, index=False)
    before = _count(settings)
    res = _cli(settings, "events", "post", str(bad))
    assert res.returncode == 2 and "record 3: amount" in res.stderr, res.stderr[-800:]
    assert _count(settings) == before
    res = _cli(settings, "events", "post", str(good))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "3 records stored and applied" in res.stderr
    log = live.LiveLog(settings.database_url)
    assert not [s for s, cid in log.unapplied() if cid in (lead, f"CLI-{tag}")]
    res = _cli(settings, "events", "post", str(good))
    assert res.returncode == 0 and "3 duplicates" in res.stderr


def test_webhooks_cli_creates_lists_tests_and_replays(live_company) -> None:
    settings = live_company.settings
    with WebhookReceiver() as crm:
        res = _cli(settings, "webhooks", "create", "--url", crm.url, "--trigger", "delta", "--delta", "2")
        assert res.returncode == 0, res.stderr[-1000:]
        ep, crm.secret = res.stdout.strip().split("\t")
        assert ep in _cli(settings, "webhooks", "list").stdout
        res = _cli(settings, "webhooks", "test", ep)
        assert res.returncode == 0 and "\tsent\t204" in res.stdout, res.stdout + res.stderr[-500:]
        msg = res.stdout.split("\t")[0]
        res = _cli(settings, "webhooks", "replay", msg)
        assert res.returncode == 0 and "\tsent\t" in res.stdout
        assert crm.received[msg] == 2 and crm.violations == []
        res = _cli(settings, "webhooks", "create", "--url", "file:///etc/passwd")
        assert res.returncode == 2 and "--url" in res.stderr
