"""Data from users is hostile: consent is default-deny in every export and ad-platform payload, every CSV we
write opens safely in a spreadsheet, concurrent duplicate conversions are duplicates (never 500s), and a broken
feature store is a 503 with the reason, never a 500."""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscope.cli import app as cli
from leadscope.tables import write_frame
from serving.audiences.export import export_csv
from serving.signals.ingest import ConversionBatch, identifiers, outbox_for
from serving.signals.platforms import Event
from tests.conftest import api_client

HOSTILE = ['=HYPERLINK("http://x","y")', "+FX1", "-2+3", "@SUM(A1)", "\tlead", "\rlead", "plain", "-12.5"]


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_consent_is_default_deny_in_audience_exports() -> None:
    # broken: 87 of 500 exported members had consent_ads false while the export said 0 without consent
    members = pd.DataFrame({"customer_id": list("abcdef"), "rank": range(1, 7), "similarity": [0.9] * 6})
    people = pd.DataFrame(
        {
            "customer_id": list("abcdef"),
            "email": [f"{c}@example.com" for c in "abcdef"],
            "consent_ads": [True, "yes", False, "no", None, "maybe"],
        }
    )
    text, counts = export_csv("meta", people, members)
    assert counts == {
        "members": 6,
        "without_ads_consent": 2,
        "consent_unknown": 2,
        "without_identifier": 0,
        "rows": 2,
    }
    assert len(_cells(text)) == 3  # header + a and b
    text, counts = export_csv("google", people.drop(columns="consent_ads"), members)
    assert counts["rows"] == 0 and counts["consent_unknown"] == 6  # no consent column: nobody leaves


def test_export_cells_are_safe_in_a_spreadsheet() -> None:
    members = pd.DataFrame({"customer_id": ["a"], "rank": [1], "similarity": [0.5]})
    people = pd.DataFrame(
        {"customer_id": ["a"], "email": ["a@example.com"], "zip": [HOSTILE[0]], "country": ["@US"], "consent_ads": [1]}
    )
    text, _ = export_csv("google", people, members)
    row = _cells(text)[1]
    assert row[4] == "'@US" and row[5] == "'" + HOSTILE[0]


def test_every_csv_we_write_neutralises_formula_cells(tmp_path) -> None:
    # broken: a zip =HYPERLINK(...) or an id +FX1 went unescaped into files marketers open in Excel
    path = tmp_path / "out.csv"
    write_frame(pd.DataFrame({"customer_id": HOSTILE, "amount": [-1.5] * len(HOSTILE)}), path)
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    cells = [r[0] for r in rows[1:]]
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells[:6])
    assert cells[:6] == ["'" + v for v in HOSTILE[:6]] and cells[6] == "plain"
    assert cells[7] == "'-12.5"  # text that looks like a number is still text we quote
    assert {r[1] for r in rows[1:]} == {"-1.5"}  # a real number stays a number


def test_score_and_import_reports_are_safe_to_open(prepared, tmp_path) -> None:
    env = {"LEADSCOPE_HOME": str(prepared.settings.home)}
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"customer_id": ["+FX1", "=1+1"]}).to_csv(ids, index=False)
    out = tmp_path / "scores.csv"
    res = CliRunner().invoke(cli, ["score", "--input", str(ids), "--out", str(out)], env=env)
    assert res.exit_code == 0, res.output
    with open(out, newline="") as fh:
        assert [r[0] for r in list(csv.reader(fh))[1:]] == ["'+FX1", "'=1+1"]
    home = tmp_path / "company"
    bad = tmp_path / "=cmd.csv"
    bad.write_text("customer_id,created_at\nc1,2026-01-01\nc2,whenever\n")
    report = tmp_path / "rejects.csv"
    res = CliRunner().invoke(
        cli, ["import", "--customers", str(bad), "--report", str(report)], env={"LEADSCOPE_HOME": str(home)}
    )
    assert res.exit_code == 0, res.output
    with open(report, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[1][0] == "'=cmd.csv" and rows[1][2] == "created_at"


def _events(n: int, prefix: str, consent: bool | None) -> list:
    now = datetime.now(UTC)
    raw = [
        {
            "event_id": f"{prefix}-{i}",
            "customer_id": f"C{i:07d}",
            "ts": (now - timedelta(hours=1)).isoformat(),
            "stage": "lead_created",
            "email": f"p{i}@example.com",
            "consent_ads": consent,
        }
        for i in range(n)
    ]
    return ConversionBatch.model_validate({"events": raw}).events


def _race(outbox, events: list, clients: int = 4, rounds: int = 50) -> tuple[list[dict], list[Exception]]:
    """`clients` threads each posting the same events `rounds` times at once (a CRM retrying)."""
    items = [
        Event(e.event_id, e.customer_id, e.ts, e.stage, None, None, identifiers(e), bool(e.consent_ads)) for e in events
    ]
    answers, errors, start = [], [], threading.Barrier(clients)

    def client() -> None:
        start.wait()
        for _ in range(rounds):
            try:
                answers.append(outbox.add(items, ["none"] * len(items)))
            except Exception as exc:  # noqa: BLE001 - the defect under test
                errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers, errors


def _check_race(outbox, events: list) -> None:
    answers, errors = _race(outbox, events)
    assert errors == [] and len(answers) == 200
    assert sum(a["accepted"] for a in answers) == len(events)  # each event stored by exactly one request
    assert all(a["accepted"] + len(a["duplicates"]) == len(events) for a in answers)
    from sqlalchemy import func, select

    from serving.signals.outbox import deliveries

    with outbox.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(deliveries)).scalar() == len(events) * len(outbox.exporters)


def test_concurrent_duplicates_are_duplicates_on_sqlite(tmp_path) -> None:
    # broken: four clients posting the same events got 59 of 200 requests answered 500 (IntegrityError)
    from leadscope.settings import Settings

    outbox = outbox_for(Settings(home=tmp_path))
    _check_race(outbox, _events(20, "race", True))


@pytest.mark.skipif(not os.environ.get("LEADSCOPE_POSTGRES_URL"), reason="LEADSCOPE_POSTGRES_URL not set")
def test_concurrent_duplicates_are_duplicates_on_postgres(tmp_path) -> None:
    import psycopg

    from leadscope.settings import Settings

    base = os.environ["LEADSCOPE_POSTGRES_URL"]
    name = f"leadscope_race_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
        settings = Settings(home=tmp_path, postgres_url=url)
        outbox = outbox_for(settings.model_copy(update={"profile": "production"}))
        assert outbox.engine.dialect.name == "postgresql"
        _check_race(outbox, _events(20, "race", True))
        outbox.engine.dispose()
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_conversions_without_ads_consent_reach_no_platform(tmp_path) -> None:
    # broken: a conversion of an opted-out (or unknown-consent) customer was sent to Meta and Google
    from leadscope.settings import Settings

    outbox = outbox_for(Settings(home=tmp_path))
    for consent, prefix in ((False, "no"), (None, "unknown"), (True, "yes")):
        events = _events(3, prefix, consent)
        items = [
            Event(e.event_id, e.customer_id, e.ts, e.stage, None, None, identifiers(e), bool(e.consent_ads))
            for e in events
        ]
        outbox.add(items, ["none"] * 3)
    for prefix, sent in (("no", False), ("unknown", False), ("yes", True)):
        found = outbox.event_status(f"{prefix}-0")
        meta = found["deliveries"]["meta"]
        assert (meta["status"] == "pending") is sent, (prefix, meta)
        if not sent:
            assert "no ads consent" in meta["reason"]


def test_a_broken_online_store_is_a_503_with_the_reason_not_a_500(prepared, tmp_path) -> None:
    # broken: one bad feature store made every POST /v1/scores a 500 and /readyz said only an exception name
    src = prepared.settings.resolve(prepared.settings.data_dir)
    data = tmp_path / "data"
    shutil.copytree(src, data, ignore=shutil.ignore_patterns("leadscope.db*"))
    settings = prepared.settings.model_copy(update={"data_dir": data, "prewarm": False})
    online = data / "feature_repo" / "online.db"
    with api_client(settings, ("score",)) as client:
        ok = client.post("/v1/scores", json={"customer_ids": ["C0000001"]})
        assert ok.status_code == 200
        with sqlite3.connect(online) as db:  # the online tables vanish under the running server
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                db.execute(f'DROP TABLE "{table}"')
        r = client.post("/v1/scores", json={"customer_ids": ["C0000002"]})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "features_unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "reading propensity_v2" in ready.json()["feature_store"]
