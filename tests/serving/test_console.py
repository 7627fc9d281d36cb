"""The console's security: sessions, CSRF, scopes, personal data and uploads (TestClient on the real app; the
browser tests are in test_console_browser.py)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from leadscope.schema import ENTITY
from serving.keys import KeyStore


@pytest.fixture(scope="module")
def app(prepared, live_company):
    # live_company is built before this app runs: its training sets MLflow's process-wide tracking URI, which the
    # running app's registry watch sets too
    from serving.app import create_app

    with TestClient(create_app(prepared.settings)) as c:
        deadline = time.monotonic() + 120
        while not c.app.state.serving.loaded and time.monotonic() < deadline:
            time.sleep(0.02)
        yield c.app


def _key(app, prepared, scopes: list[str]) -> str:
    """A fresh key, once the server's key cache (LEADSCOPE_KEY_CACHE_SECONDS) knows it."""
    token = KeyStore(prepared.settings.database_url).create("console-test", scopes, "1000000/minute")[0]
    deadline = time.monotonic() + prepared.settings.key_cache_seconds + 5
    while app.state.guard.keys.verify(token) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return token


@contextmanager
def logged_in(app, prepared, scopes: list[str]) -> Iterator[tuple[TestClient, str, str]]:
    """A browser-like client logged in with a fresh key of `scopes`: (client, key, CSRF token)."""
    token = _key(app, prepared, scopes)
    c = TestClient(app, base_url="http://testserver")  # no `with`: the app's lifespan runs once (the fixture)
    form = c.get("/console/login")
    login_csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    r = c.post("/console/login", data={"api_key": token, "csrf": login_csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = c.get(r.headers["location"]) if scopes != ["events"] else c.get("/console/leads")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    yield c, token, found.group(1) if found else ""


def _console_routes(app) -> list[tuple[str, str]]:
    from serving.console import router

    out = []
    for r in router.routes:
        path = getattr(r, "path", "")
        if path.startswith("/console") and not path.startswith(("/console/login", "/console/static")):
            for m in sorted(r.methods - {"HEAD"}):
                out.append((m, path.replace("{audience_id}", "aud_x").replace("{name}", "propensity")
                            .replace("{version}", "1").replace("{plot}", "roc.png")))  # fmt: skip
    return out


def test_no_page_fragment_or_action_without_a_valid_session(app, prepared) -> None:
    # broken: anyone on the network reads leads and audiences, or builds and exports without logging in
    routes = _console_routes(app)
    assert len(routes) >= 10
    c = TestClient(app)
    for method, path in routes:
        if method == "GET":
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/console/login", path
            r = c.get(path, headers={"hx-request": "true"}, follow_redirects=False)  # a fragment
            assert r.status_code == 401, path
        else:
            r = c.post(path, data={"csrf": "x"}, follow_redirects=False)
            assert r.status_code == 401, path
    # a forged or tampered cookie is no session
    c.cookies.set("leadscope_session", "eyJrIjoibHNrX3hfeCIsImMiOiJ4In0.forged.sig", path="/console")
    assert c.get("/console/leads", follow_redirects=False).status_code == 303
    with logged_in(app, prepared, ["admin"]) as (c, token, _):
        assert c.get("/console/leads").status_code == 200
        key_id = token.split("_")[1]
        KeyStore(prepared.settings.database_url).revoke(key_id)
        time.sleep(prepared.settings.key_cache_seconds + 0.1)
        assert c.get("/console/leads", follow_redirects=False).status_code == 303  # a revoked key logs out


def test_the_session_cookie_is_http_only_and_same_site_strict(app, prepared) -> None:
    token = _key(app, prepared, ["score"])
    c = TestClient(app)
    form = c.get("/console/login")
    assert "httponly" in form.headers["set-cookie"].lower()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    r = c.post("/console/login", data={"api_key": token, "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("leadscope_session="))
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and "path=/console" in cookie.lower()
    assert token not in r.text and token not in cookie  # the key is signed into the cookie, not echoed
    bad = c.post("/console/login", data={"api_key": "lsk_nope_nope", "csrf": csrf}, follow_redirects=False)
    assert bad.status_code in (401, 403)


def test_every_post_needs_the_csrf_token(app, prepared, tmp_path) -> None:
    # broken: another site makes a logged-in marketer's browser build audiences or log out
    c = TestClient(app)
    form = c.get("/console/login")
    token = _key(app, prepared, ["admin"])
    r = c.post("/console/login", data={"api_key": token}, follow_redirects=False)  # no login token
    assert r.status_code == 403 and "csrf" in r.text.lower()
    assert "leadscope_session" not in r.headers.get("set-cookie", "")
    assert form.status_code == 200
    ids = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet")[ENTITY].astype(str).head(200).tolist()
    seed = ("customer_id\n" + "\n".join(ids)).encode()
    with logged_in(app, prepared, ["admin"]) as (c, _, csrf):
        before = len(app.state.audiences.recent(1000))
        for data in ({}, {"csrf": "wrong"}, {"csrf": csrf[:-1]}):
            r = c.post("/console/audiences", data=data, files={"seed_file": ("s.csv", seed, "text/csv")})
            assert r.status_code == 403, data
        assert c.post("/console/logout", data={}).status_code == 403
        assert c.post("/console/logout", headers={"x-csrf-token": "nope"}).status_code == 403
        assert len(app.state.audiences.recent(1000)) == before  # nothing built
        for method, path in _console_routes(app):  # every POST the console has
            if method == "POST":
                r = c.post(path, data={"q": "x", "filter": "a=b"}, follow_redirects=False)
                assert r.status_code == 403 and "csrf" in r.text.lower(), path
        r = c.post("/console/logout", data={"csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert c.get("/console/leads", follow_redirects=False).status_code == 303  # logged out


def test_a_key_without_the_audiences_scope_cannot_build_or_export(app, prepared) -> None:
    ids = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet")[ENTITY].astype(str).head(200).tolist()
    seed = ("customer_id\n" + "\n".join(ids)).encode()
    with logged_in(app, prepared, ["admin"]) as (c, _, csrf):
        r = c.post("/console/audiences", data={"csrf": csrf, "percent": "2"}, files={"seed_file": ("s.csv", seed)},
                   follow_redirects=False)  # fmt: skip
        assert r.status_code == 303
        audience = r.headers["location"]
    with logged_in(app, prepared, ["score"]) as (c, _, csrf):
        page = c.get("/console/leads").text
        assert 'href="/console/audiences"' not in page and 'href="/console/leads"' in page  # not even offered
        assert c.get("/console/audiences").status_code == 403
        assert c.get(audience).status_code == 403
        assert c.get(audience + "/export?format=meta").status_code == 403
        r = c.post("/console/audiences", data={"csrf": csrf}, files={"seed_file": ("s.csv", seed)})
        assert r.status_code == 403 and "audiences" in r.text
        assert c.get("/console/signals").status_code == 403  # conversions scope
    with logged_in(app, prepared, ["audiences"]) as (c, _, _):
        assert c.get("/console/leads?q=C0000001").status_code == 403  # score scope
        assert c.get(audience).status_code == 200
        assert c.get(audience).text.count("without ads consent") == 1  # the counts, read once and kept
        assert c.get("/console/audiences/..%2F..%2Fv1%2Fscores").status_code == 404  # no route takes it
        r = c.get("/console/audiences/aud.x")  # only an id ever reaches the API's path
        assert r.status_code == 422 and "audience_id" in r.text


def test_no_raw_personal_data_on_any_page(app, prepared) -> None:
    # broken: a console page leaks e-mails, phones or names to whoever looks over a shoulder (or into a proxy log)
    customers = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet")
    sample = customers.sample(12, random_state=4)
    secrets_ = set()
    for col in ("email", "phone"):
        if col in customers:
            secrets_ |= {str(v).strip().lower() for v in customers[col].dropna() if len(str(v).strip()) >= 7}
    assert secrets_, "the generated company has no e-mails or phones to protect"
    with logged_in(app, prepared, ["admin"]) as (c, _, _):
        pages = [c.get(f"/console/leads?q={cid}").text for cid in sample[ENTITY]]
        if "email" in customers:
            email = str(sample["email"].iloc[0]).strip()
            r = c.get("/console/leads")
            csrf = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
            found = c.post("/console/leads", data={"csrf": csrf, "q": email.upper()}, follow_redirects=False)
            assert found.status_code == 303 and email.lower() not in found.headers["location"].lower()
            assert found.headers["location"].endswith(f"q={sample[ENTITY].iloc[0]}")  # through the hashed index
            pages.append(c.get(found.headers["location"]).text)
            refused = c.get("/console/leads", params={"q": email})  # never in an address
            assert refused.status_code == 422
            pages.append(refused.text)
        pages += [c.get(p).text for p in ("/console/audiences", "/console/models", "/console/signals")]
        for html in pages:
            assert "Customer " in html or "<h1>" in html
            text = html.lower()
            leaked = [v for v in secrets_ if v in text]
            assert not leaked, leaked[:3]
        for _, row in sample.iterrows():
            name = f"{row.get('first_name', '')} {row.get('last_name', '')}".strip()
            if len(name) > 3:
                assert all(name not in html for html in pages)


def test_seed_uploads_are_bounded_and_validated_and_a_refused_one_builds_nothing(app, prepared) -> None:
    limit = prepared.settings.console_max_upload_bytes
    ids = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet")[ENTITY].astype(str).tolist()
    with logged_in(app, prepared, ["audiences"]) as (c, _, csrf):
        before = len(app.state.audiences.recent(1000))

        def post(content: bytes, **form: str):  # noqa: ANN202
            return c.post("/console/audiences", data={"csrf": csrf, **form}, files={"seed_file": ("s.csv", content)})

        body = "customer_id\n" + "\n".join(ids * 40)
        just_over = body[: limit + 100].encode()
        r = post(just_over)
        assert r.status_code == 413 and "seed_file" in r.text
        r = post(body.encode() * 2)  # far over: the body limit refuses it before anything reads it
        assert r.status_code == 413 and "body" in r.text
        r = post("customer_id\n\xff\xfe".encode("latin-1"))
        assert r.status_code == 422 and "seed_file" in r.text and "UTF-8" in r.text
        r = post(b"a,b\n1,2\n")
        assert r.status_code == 422 and "customer_id column" in r.text
        from serving.console import _seed_ids

        semicolons = ("\ufeffName;Customer_ID\r\n" + "".join(f"x;{i}\r\n" for i in ids[:5])).encode()
        assert _seed_ids(semicolons, limit) == ids[:5]  # a European spreadsheet's export, BOM and CRLF
        r = post(("customer_id\n" + "\n".join(ids[:10])).encode())
        assert r.status_code == 422 and "seed_file" in r.text and "at least" in r.text
        r = post(("customer_id\n" + "\n".join(ids[:200])).encode(), percent="50")
        assert r.status_code == 422 and "<code>percent</code>" in r.text  # the console's page, naming the field
        r = post(("customer_id\n" + "\n".join(["x" * 500] * 200)).encode())
        assert r.status_code == 422 and "seed_file" in r.text
        assert len(app.state.audiences.recent(1000)) == before
        for html in (r.text, post(b"").text):
            assert "Traceback" not in html


def test_a_lookalike_of_a_segment_seeds_with_everyone_who_matches(app, prepared) -> None:
    # broken: a marketer without a seed file cannot start from a segment, or the filters pick other people
    from serving.audiences.insight import attributes_of

    pop = app.state.serving.snapshots.population()
    attrs = attributes_of(pop)
    col = next(c for c in attrs.columns if 2 <= attrs[c].nunique() <= 10)
    value = attrs[col].value_counts().index[0]
    expected = int((attrs[col].astype(str) == str(value)).sum())
    with logged_in(app, prepared, ["audiences"]) as (c, token, csrf):
        page = c.get("/console/audiences").text
        assert f'value="{col}={value}"' in page
        r = c.post("/console/audiences/segment", data={"csrf": csrf, "filter": [f"{col}={value}", ""], "percent": "2"},
                   follow_redirects=False)  # fmt: skip
        assert r.status_code == 303, r.text
        audience_id = r.headers["location"].rsplit("/", 1)[1]
        seed = app.state.audiences.get(audience_id)["seed"]
        assert seed["given"] == seed["resolved"] == expected
        r = c.post("/console/audiences/segment", data={"csrf": csrf, "filter": [f"{col}={value}"], "size": "150"},
                   follow_redirects=False)  # fmt: skip
        bigger = r.headers["location"].rsplit("/", 1)[1]
        assert app.state.audiences.get(bigger)["size"] == 150  # an exact size instead of the percent
        r = c.post("/console/audiences/segment", data={"csrf": csrf, "filter": [f"{col}={value}"], "size": "-3"})
        assert r.status_code == 422 and "size" in r.text
        page = c.get(f"/console/audiences/{audience_id}", params={"compare": bigger}).text
        both = int(re.search(r"Overlap: (\d+) people are in both", page).group(1))
        api = c.get(f"/v1/audiences/{audience_id}/insight", params={"compare": bigger},
                    headers={"authorization": f"Bearer {token}"}).json()["overlap"]  # fmt: skip
        assert both == api["intersection"] > 0  # the page shows the API's overlap
        before = len(app.state.audiences.recent(1000))
        r = c.post("/console/audiences/segment", data={"csrf": csrf, "filter": [f"{col}=no such value"]})
        assert r.status_code == 422 and "filter.0" in r.text
        r = c.post("/console/audiences/segment", data={"csrf": csrf, "filter": ["', 'x"]})
        assert r.status_code == 422
        assert len(app.state.audiences.recent(1000)) == before


def test_the_signals_page_counts_deliveries_per_platform_without_personal_data(app, prepared) -> None:
    # broken: a marketer cannot tell whether conversions reached the ad platforms
    from datetime import UTC, datetime

    customers = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet")
    cid = str(customers[ENTITY].iloc[5])
    with logged_in(app, prepared, ["admin"]) as (c, token, _):
        event = {"event_id": "console-signal-1", "customer_id": cid, "ts": datetime.now(UTC).isoformat(),
                 "stage": "won", "value": 120, "currency": "USD", "email": "Console.Person@Example.com",
                 "country": "US"}  # fmt: skip
        r = c.post("/v1/conversions", json={"events": [event]}, headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 202, r.text
        page = c.get("/console/signals").text
        rows = dict(re.findall(r'<th scope="row">(\w+)</th><td class="num">(\d+)</td>', page))  # platform → pending
        status = app.state.outbox.status()
        assert rows and all(int(rows[p]) == status[p].get("pending", 0) for p in rows)
        assert sum(int(v) for v in rows.values()) >= 1
        assert "console.person@example.com" not in page.lower()


def test_the_lead_page_shows_the_score_history_with_what_moved(live_company) -> None:
    # broken: a sales manager sees a new score but not that it changed, or why
    import uuid
    from datetime import UTC, datetime

    from serving.app import create_app
    from tests.serving.test_events import _hot, _open_leads

    settings = live_company.settings
    with TestClient(create_app(settings)) as base:
        deadline = time.monotonic() + 120
        while not base.app.state.serving.loaded and time.monotonic() < deadline:
            time.sleep(0.02)
        app = base.app
        with logged_in(app, live_company, ["score", "events"]) as (c, token, _):
            auth = {"authorization": f"Bearer {token}"}
            leads = _open_leads(settings)
            scores = c.post("/v1/scores", json={"customer_ids": leads[:300]}, headers=auth).json()["results"]
            cid = next(r["customer_id"] for r in scores if r.get("propensity") and 25 <= r["propensity"]["score"] <= 75)
            events = _hot(cid, datetime.now(UTC), f"console-{uuid.uuid4().hex[:8]}")
            r = c.post("/v1/events", json={"events": events}, headers=auth)
            assert r.status_code == 202 and r.json()["applied"], r.text
            change = c.get(f"/v1/customers/{cid}/scores", headers=auth).json()["changes"][0]
            page = c.get(f"/console/leads?q={cid}").text
            history = page[page.index("<h3>Score history</h3>") :]
            assert "No recorded score changes" not in history
            row = f"<td>{change['current']['grade']} {change['current']['score']}</td>"
            assert row in history and change["moved"][0]["label"] in history


def test_workers_starting_together_share_one_session_secret(tmp_path) -> None:
    # broken: two workers make different secrets (or one reads a half-written file) and logins bounce between them
    from concurrent.futures import ThreadPoolExecutor

    from leadscope.settings import Settings
    from serving.console import Sessions, _local_secret

    settings = Settings(home=tmp_path)
    with ThreadPoolExecutor(8) as pool:
        found = set(pool.map(lambda _: _local_secret(settings), range(32)))
    assert len(found) == 1 and len(next(iter(found))) >= 40
    token = Sessions(settings).login_signer.dumps("login-csrf")
    assert Sessions(settings).login_signer.loads(token) == "login-csrf"  # another worker reads the login form's token
    cookie, csrf = Sessions(settings).store.open("key1")
    opened = Sessions(settings).store.read(cookie)  # and the session one worker opened
    assert opened is not None and (opened.key_id, opened.csrf) == ("key1", csrf)
    other = Settings(home=tmp_path / "elsewhere")
    assert Sessions(other).store.read(cookie) is None  # without its database, a cookie is no session


def test_unreadable_identifiers_neither_break_the_index_nor_the_search(app, prepared) -> None:
    # broken: one customer's malformed e-mail (messy exports) or a searched "a@b" answers 500
    from serving.console import _find

    state = app.state.serving
    contacts = state.snapshots.contacts()
    broken = contacts.copy()
    broken.loc[broken.index[:3], "email"] = ["not an address", "@", "x@y"]
    if "phone" in broken:
        broken.loc[broken.index[:3], "phone"] = ["12", "phone?", "+"]
    state.snapshots.drop()
    state.snapshots.memo("contacts", lambda: broken)
    try:
        assert _find(state, "x@y") == [] and _find(state, "+12") == []
        with logged_in(app, prepared, ["score"]) as (c, _, csrf):
            for q in ("a@b", "@", "not@an address", "+1", "(((((((0)))))))"):
                r = c.post("/console/leads", data={"csrf": csrf, "q": q}, follow_redirects=False)
                assert r.status_code in (303, 404), (q, r.status_code)
            email = next(e for e in contacts["email"].dropna().astype(str)[3:] if "@" in e)
            r = c.post("/console/leads", data={"csrf": csrf, "q": email}, follow_redirects=False)
            assert r.status_code == 303  # everyone else is still found
    finally:
        state.snapshots.drop()
