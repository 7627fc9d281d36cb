"""The seven holes a hostile-input and fault probe found (issue #37), each shown closed: a parquet bomb, a console
cookie holding the key, a logout that did not end the session, SSRF through IPv6 forms of private IPv4 addresses,
numbers taken as timestamps, the live applier's thread dying, and two contract slips (Allow, consent spellings)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from features import live
from serving.webhooks import WebhookInputError, check_url
from tests.conftest import api_client
from tests.serving.test_console import _key, app, logged_in  # noqa: F401 - `app` is the module's fixture
from tests.serving.test_events import _hot, _open_leads

LEADSCOPE = Path(sys.executable).with_name("leadscope")


def _import(home: Path, customers: Path, *wrap: str, **env: str) -> subprocess.CompletedProcess:
    """`leadscope import --customers FILE` as a company would run it: its own process, LEADSCOPE_HOME `home`."""
    return subprocess.run(
        [*wrap, str(LEADSCOPE), "import", "--customers", str(customers)],
        env={"LEADSCOPE_HOME": str(home), "PATH": "/usr/bin", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- 1. a parquet file whose dictionary expands far beyond what its metadata says --------------------------------


def _bomb(path: Path, rows: int, cell: int) -> None:
    """One distinct value of `cell` bytes repeated `rows` times, dictionary-encoded: a small file whose values take
    rows × cell bytes once read."""
    note = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["z" * cell]))
    table = pa.table(
        {
            "customer_id": [f"c{i}" for i in range(rows)],
            "created_at": ["2026-01-01"] * rows,
            "note": note,
        }
    )
    pq.write_table(table, path, compression="zstd", row_group_size=rows)


def test_a_parquet_dictionary_bomb_is_refused_within_bounded_memory(tmp_path) -> None:
    # broken: 24.6 MB of parquet expanding to 2.0 GB passed the size guard, grew to 4.27 GB and died with a traceback
    bomb = tmp_path / "bomb.parquet"
    _bomb(bomb, rows=16_000, cell=60_000)  # 960 MB of text once read, under the 65,536-byte cell limit
    assert bomb.stat().st_size < 2_000_000
    # the peak of the import process alone: a wrapper whose only child it is reports its ru_maxrss on stderr
    wrapper = (
        "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
        "print(f'PEAK_KIB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr); sys.exit(rc)"
    )
    res = _import(tmp_path, bomb, sys.executable, "-c", wrapper, LEADSCOPE_IMPORT_MAX_FILE_BYTES="100000000")
    peak_mib = int(re.search(r"PEAK_KIB=(\d+)", res.stderr).group(1)) / 1024
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode == 2, out
    assert "Traceback" not in out
    assert "bomb.parquet" in out and "100,000,000" in out and "LEADSCOPE_IMPORT_MAX_FILE_BYTES" in out, out
    assert peak_mib < 900, f"the refused import held {peak_mib:.0f} MiB"
    assert not (tmp_path / "data" / "raw" / "customers.parquet").exists()


def test_a_parquet_file_within_the_bound_still_imports_its_values(tmp_path) -> None:
    ok = tmp_path / "ok.parquet"
    _bomb(ok, rows=50, cell=1_000)
    res = _import(tmp_path, ok, LEADSCOPE_IMPORT_MAX_FILE_BYTES="100000000")
    assert res.returncode == 0, res.stdout + res.stderr
    stored = pd.read_parquet(tmp_path / "data" / "raw" / "customers.parquet")
    assert len(stored) == 50 and set(stored["note"]) == {"z" * 1_000}


# --- 2 and 3. console sessions: no secret in the cookie, ended by logout, rotated at login -------------------------


def _session_cookie(c: TestClient) -> str:
    return next(v for k, v in c.cookies.items() if k == "leadscope_session")


def _decoded(cookie: str) -> str:
    out = []
    for part in cookie.split("."):
        try:
            out.append(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("latin-1"))
        except ValueError:
            pass
    return cookie + " ".join(out)


def test_the_console_cookie_holds_no_key_and_is_useless_as_an_api_key(app, prepared) -> None:  # noqa: F811
    # broken: the cookie was {"k": "lsk_…"} signed, not encrypted: whoever saw it held a working API key
    with logged_in(app, prepared, ["admin"]) as (c, token, _):
        cookie = _session_cookie(c)
        secret = token.split("_", 2)[2]
        assert secret not in _decoded(cookie) and "lsk_" not in _decoded(cookie)
        api = TestClient(app)
        for headers in ({"authorization": f"Bearer {cookie}"}, {"x-api-key": cookie}):
            assert api.post("/v1/scores", json={"customer_ids": ["x"]}, headers=headers).status_code == 401
        assert c.get("/console/leads").status_code == 200


def test_logout_ends_the_session_for_every_copy_of_the_cookie(app, prepared) -> None:  # noqa: F811
    # broken: a cookie saved before POST /console/logout still got 200 afterwards, for up to 8 hours
    with logged_in(app, prepared, ["score"]) as (c, _, csrf):
        saved = _session_cookie(c)
        assert c.post("/console/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    thief = TestClient(app)
    thief.cookies.set("leadscope_session", saved, path="/console")
    assert thief.get("/console/leads", follow_redirects=False).status_code == 303
    assert thief.get("/console/leads", headers={"hx-request": "true"}).status_code == 401


def test_login_rotates_the_session_and_revoking_the_key_ends_it(app, prepared) -> None:  # noqa: F811
    with logged_in(app, prepared, ["score"]) as (c, token, _):
        first = _session_cookie(c)
        form = c.get("/console/login")
        login_csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        r = c.post("/console/login", data={"api_key": token, "csrf": login_csrf}, follow_redirects=False)
        assert r.status_code == 303
        second = _session_cookie(c)
        assert second != first
        old = TestClient(app)
        old.cookies.set("leadscope_session", first, path="/console")
        assert old.get("/console/leads", follow_redirects=False).status_code == 303  # the old id is dead
        assert c.get("/console/leads").status_code == 200
        from typer.testing import CliRunner

        from leadscope.cli import app as cli

        env = {"LEADSCOPE_HOME": str(prepared.settings.home)}
        res = CliRunner().invoke(cli, ["keys", "revoke", token.split("_")[1]], env=env)
        assert res.exit_code == 0 and "1 console session(s) ended" in res.output, res.output
        # ended now, not when the server's key cache next reads the key table
        assert c.get("/console/leads", follow_redirects=False).status_code == 303


# --- 4. SSRF through IPv6 forms of private IPv4 addresses ---------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254 (the cloud metadata service)
        "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
        "[64:ff9b:1::a00:1]",  # local-use NAT64 (RFC 8215)
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
        "[2002:a9fe:a9fe::1]",  # 6to4 of 169.254.169.254
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::ffff:a9fe:a9fe]",
        "[::7f00:1]",  # IPv4-compatible (deprecated)
        "[2001:0:102:304::80ff:fffe]",  # Teredo, client 127.0.0.1
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f.1",
    ],
)
def test_ipv6_and_numeric_forms_of_private_addresses_are_refused(host) -> None:
    # broken: https://[64:ff9b::a9fe:a9fe]/ and https://[2002:7f00:1::]/ were accepted as webhook URLs (201)
    with pytest.raises(WebhookInputError):
        check_url(f"https://{host}/hook", production=True)


def test_public_addresses_in_any_form_stay_allowed() -> None:
    for host in ("[2606:4700:4700::1111]", "[2002:808:808::1]", "[64:ff9b::808:808]", "8.8.8.8"):
        assert check_url(f"https://{host}/hook", production=True)


def test_a_subscription_made_before_the_rule_fails_at_send_time_and_in_production_is_refused(tmp_path) -> None:
    import httpx

    from serving.webhooks import Webhooks

    url = f"sqlite:///{tmp_path / 'svc.db'}"
    with pytest.raises(WebhookInputError, match="127.0.0.1"):
        Webhooks(url, production=True).create("https://[64:ff9b::7f00:1]/h", ["propensity"], "grade_change")
    endpoint, _ = Webhooks(url, production=False).create("https://[2002:7f00:1::]/h", ["propensity"], "grade_change")
    sent: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:  # nothing may be sent: the check comes first
        sent.append(str(request.url))
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(record)) as client:
        state = Webhooks(url, production=True).test(endpoint.id, client)
    assert not sent and state["status"] == "failed" and "127.0.0.1" in state["reason"], state


# --- 5. a bare number is not a timestamp ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ts": 12345}, "events.0.ts"),
        ({"ts": 1_765_000_000_000}, "events.0.ts"),
        ({"ts": 1.5}, "events.0.ts"),
        ({"ts": "12345"}, "events.0.ts"),
        ({"type": "customer", "created_at": 0, "attributes": {}}, "events.0.created_at"),
    ],
)
def test_numbers_are_refused_as_event_timestamps_naming_iso_8601(live_company, change, field) -> None:
    # broken: "ts": 12345 answered 202 and stored 1970-01-01T03:25:45
    settings = live_company.settings
    cid = _open_leads(settings)[0]
    rec = {**_hot(cid, datetime.now(UTC), f"num-{uuid.uuid4().hex[:8]}")[0], **change}
    if rec["type"] == "customer":
        rec.pop("channel"), rec.pop("event_type")
    log = live.LiveLog(settings.database_url)
    with api_client(settings, ("events",)) as client:
        r = client.post("/v1/events", json={"events": [rec]})
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["field"] == field and "ISO 8601" in err["message"], err
    with log.engine.connect() as c:
        assert c.execute(select(live.records.c.record_id).where(live.records.c.record_id == rec["id"])).first() is None


def test_numbers_are_refused_as_conversion_and_lead_timestamps(prepared) -> None:
    from serving.leads import LeadScoreRequest
    from serving.signals.ingest import ConversionEvent

    with pytest.raises(ValueError, match="ISO 8601"):
        ConversionEvent.model_validate({"event_id": "e", "customer_id": "c", "ts": 0, "stage": "mql"})
    with pytest.raises(ValueError, match="ISO 8601"):
        LeadScoreRequest.model_validate({"lead": {"created_at": 1_700_000_000}})
    ok = ConversionEvent.model_validate(
        {"event_id": "e", "customer_id": "c", "ts": "2026-01-01T00:00:00Z", "stage": "mql"}
    )
    assert ok.ts == datetime(2026, 1, 1, tzinfo=UTC)


def test_an_imported_timestamp_column_of_numbers_is_refused_naming_the_column(tmp_path) -> None:
    # broken: a parquet created_at of numbers was read as Excel serial days (12345 → 1933-10-18) without a word
    path = tmp_path / "c.parquet"
    pd.DataFrame({"customer_id": ["a", "b"], "created_at": [12_345, 45_000]}).to_parquet(path)
    res = _import(tmp_path, path)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode == 2 and "column created_at" in out and "ISO 8601" in out, out
    assert not (tmp_path / "data" / "raw" / "customers.parquet").exists()


# --- 6. the live applier survives a request that stopped waiting -------------------------------------------------


def _unapplied(log: live.LiveLog, customers: set[str]) -> set[str]:
    """Which of these customers have records stored but not applied yet."""
    return {cid for _, cid in log.unapplied()} & customers


def test_records_posted_after_a_cancelled_wait_are_applied(live_company) -> None:
    # broken: a waiter that gave up (LEADSCOPE_EVENTS_APPLY_WAIT_SECONDS reached) killed the `live-apply` thread
    # with InvalidStateError when its pass ended; records posted during that pass stayed unapplied until a later
    # post restarted it
    settings = live_company.settings.model_copy(update={"events_apply_wait_seconds": 0.001})
    leads = _open_leads(settings)
    log = live.LiveLog(settings.database_url)
    now = datetime.now(UTC)
    with api_client(settings, ("events", "score")) as client:
        state = client.app.state.serving
        later: set[str] = set()
        for round_ in range(3):
            tag = f"cancel-{round_}-{uuid.uuid4().hex[:6]}"
            # a pass over 300 customers: long enough for the next request to arrive while it runs
            many = [_hot(cid, now, f"{tag}-{k}")[0] for k, cid in enumerate(leads[100 : 100 + 300])]
            r = client.post("/v1/events", json={"events": many})  # its wait is cancelled after 1 ms
            assert r.status_code == 202 and r.json()["applied"] is False, r.text
            recs = _hot(leads[round_], now, tag + "-later")[:2]
            assert client.post("/v1/events?wait=false", json={"events": recs}).status_code == 202
            later.add(leads[round_])
            deadline = time.monotonic() + 10
            while _unapplied(log, later):
                assert time.monotonic() < deadline, f"still unapplied: {sorted(_unapplied(log, later))}"
                time.sleep(0.05)
        assert state.live.passes.thread is None or state.live.passes.thread.is_alive()
        ready = client.get("/readyz").json()
        assert ready["live_applier_restarts"] == 0 and ready["live_applier_error"] is None, ready


def _restarts(metrics: str) -> float:
    found = re.search(r"^leadscope_live_applier_restarts_total(?:\{[^}]*\})? (\S+)$", metrics, re.M)
    assert found, "the applier's restarts are not in /metrics"
    return float(found.group(1))


def test_a_crashed_applier_is_restarted_counted_and_reported(live_company, monkeypatch) -> None:
    settings = live_company.settings
    leads = _open_leads(settings)
    log = live.LiveLog(settings.database_url)
    with api_client(settings, ("events", "score")) as client:
        applier = client.app.state.serving.live.passes
        original, crashes = applier._next_batch, []

        def crash_once():  # noqa: ANN202 - a fault injected once into the applier's loop
            if not crashes:
                crashes.append(1)
                raise MemoryError("injected")
            return original()

        monkeypatch.setattr(applier, "_next_batch", crash_once)
        restarts_before = _restarts(client.get("/metrics").text)
        recs = _hot(leads[30], datetime.now(UTC), f"crash-{uuid.uuid4().hex[:6]}")[:2]
        assert client.post("/v1/events?wait=false", json={"events": recs}).status_code == 202
        deadline = time.monotonic() + 10
        while _unapplied(log, {leads[30]}):
            assert time.monotonic() < deadline, "records not applied after the applier crashed"
            time.sleep(0.05)
        ready = client.get("/readyz").json()
        assert ready["live_applier_restarts"] == 1 and "MemoryError" in ready["live_applier_error"], ready
        assert _restarts(client.get("/metrics").text) == restarts_before + 1


# --- 7. contract slips: Allow headers, one boolean vocabulary -------------------------------------------------------


def test_a_wrong_method_names_every_method_the_path_allows(prepared) -> None:
    # broken: OPTIONS /v1/webhooks answered 405 with `Allow: POST` though GET exists too
    with api_client(prepared.settings) as client:
        r = client.options("/v1/webhooks")
        assert set(re.split(r",\s*", r.headers["allow"])) >= {"GET", "POST"}, r.headers
        assert r.status_code in (200, 204, 405)
        r = client.delete("/v1/webhooks")
        assert r.status_code == 405 and set(re.split(r",\s*", r.headers["allow"])) >= {"GET", "POST"}
        assert r.json()["error"]["code"] == "method_not_allowed"
        r = client.put("/v1/scores")
        assert r.status_code == 405 and "POST" in r.headers["allow"]


def test_consent_spellings_are_one_vocabulary_in_the_api_the_import_and_the_docs(tmp_path) -> None:
    # broken: consent `on` was accepted by /v1/conversions but refused by `leadscope import`; DATA.md listed neither
    from leadscope.schema import FALSE, TRUE
    from serving.signals.ingest import ConversionEvent

    base = {"event_id": "e", "customer_id": "c", "ts": "2026-01-01T00:00:00Z", "stage": "mql"}
    for word in sorted(TRUE):
        assert ConversionEvent.model_validate({**base, "consent_ads": word.upper()}).consent_ads is True
    for word in sorted(FALSE):
        assert ConversionEvent.model_validate({**base, "consent_ads": word}).consent_ads is False
    for bad in ("maybe", "2", "ja", 2):
        with pytest.raises(ValueError, match="consent_ads"):
            ConversionEvent.model_validate({**base, "consent_ads": bad})
    assert {"on", "off"} <= TRUE | FALSE
    words = sorted(TRUE | FALSE)
    rows = "".join(f"c{i},2026-01-01,{w}\n" for i, w in enumerate(words))
    path = tmp_path / "c.csv"
    path.write_text("customer_id,created_at,consent_ads\n" + rows)
    res = _import(tmp_path, path)
    assert res.returncode == 0, res.stdout + res.stderr
    stored = pd.read_parquet(tmp_path / "data" / "raw" / "customers.parquet").set_index("customer_id")
    assert len(stored) == len(words)
    for i, w in enumerate(words):
        assert bool(stored.loc[f"c{i}", "consent_ads"]) is (w in TRUE), w
    doc = (Path(__file__).parents[2] / "docs" / "DATA.md").read_text()
    line = next(x for x in doc.splitlines() if x.startswith("| true/false |"))
    for w in words:
        if not w.replace(".", "").isdigit() or w in ("1", "0"):
            assert f"`{w}`" in line, w
