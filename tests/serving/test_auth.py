"""API keys and scopes on every route: no key, wrong key, wrong scope, revoked key; open probes; rate limits."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadscope.cli import app as cli
from serving.app import create_app
from serving.keys import SCOPES, KeyStore

# every /v1 route and the scope it needs; a new route without an entry here fails test_every_route_is_listed
SCOPED = {
    ("POST", "/v1/scores"): ("score", {"customer_ids": ["C1"]}),
    ("POST", "/v1/scores/batch"): ("score", {"customer_ids": ["C1"]}),
    ("POST", "/v1/leads/score"): ("score", {"lead": {"created_at": "2026-01-01T00:00:00Z"}}),
    ("POST", "/v1/admin/reload"): ("admin", None),
    ("POST", "/v1/conversions"): ("conversions", {"events": []}),
    ("GET", "/v1/conversions/export"): ("conversions", None),
    ("GET", "/v1/conversions/{event_id}"): ("conversions", None),
    ("POST", "/v1/audiences/lookalike"): ("audiences", {"seed_customer_ids": ["C1"], "percent": 1}),
    ("GET", "/v1/audiences/{audience_id}"): ("audiences", None),
    ("GET", "/v1/audiences/{audience_id}/insight"): ("audiences", None),
    ("GET", "/v1/audiences/{audience_id}/export"): ("audiences", None),
    ("POST", "/v1/next-best-action"): ("score", {"customer_ids": ["C1"]}),
    ("POST", "/v1/events"): ("events", {"events": []}),
    ("GET", "/v1/customers/{customer_id}/scores"): ("score", None),
    ("POST", "/v1/webhooks"): ("webhooks", {"url": "ftp://x"}),
    ("GET", "/v1/webhooks"): ("webhooks", None),
    ("DELETE", "/v1/webhooks/{endpoint_id}"): ("webhooks", None),
    ("POST", "/v1/webhooks/{endpoint_id}/test"): ("webhooks", None),
    ("GET", "/v1/webhooks/{endpoint_id}/deliveries"): ("webhooks", None),
    ("POST", "/v1/webhooks/deliveries/{message_id}/replay"): ("webhooks", None),
}
OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


@pytest.fixture(scope="module")
def env(prepared):
    settings = prepared.settings.model_copy(update={"key_cache_seconds": 0.0})
    store = KeyStore(settings.database_url)
    with TestClient(create_app(settings)) as client:
        yield settings, store, client


def _call(client, method, path, body, token=None, header="authorization"):
    headers = {}
    if token:
        headers = {"authorization": f"Bearer {token}"} if header == "authorization" else {"x-api-key": token}
    return client.request(method, path, json=body, headers=headers)


def test_every_route_is_listed(env) -> None:
    # broken: a new route would ship without anyone deciding who may call it
    _, _, client = env
    paths = client.app.openapi()["paths"]
    routes = {(m.upper(), path) for path, ops in paths.items() for m in ops}
    assert routes == set(SCOPED) | OPEN


@pytest.mark.parametrize(("method", "path"), sorted(SCOPED))
def test_scoped_route_refuses_missing_wrong_unscoped_and_revoked_keys(env, method, path) -> None:
    # broken: anyone on the network could score customers or reload models
    _, store, client = env
    scope, body = SCOPED[(method, path)]
    r = _call(client, method, path, body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["www-authenticate"].startswith("Bearer")
    good, key = store.create("route-test", [scope])
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for bad in (forged, "lsk_nope_nope", "not-a-key", f"lsk_{key.key_id}_"):
        assert _call(client, method, path, body, bad).status_code == 401
    other = next(s for s in SCOPES if s not in (scope, "admin"))
    wrong, _ = store.create("wrong-scope", [other])
    r = _call(client, method, path, body, wrong)
    assert r.status_code == 403 and f"'{scope}'" in r.json()["error"]["message"]
    for header in ("authorization", "x-api-key"):
        assert _call(client, method, path, body, good, header).status_code not in (401, 403)
    admin, _ = store.create("admin", ["admin"])
    assert _call(client, method, path, body, admin).status_code not in (401, 403)
    assert store.revoke(key.key_id) and not store.revoke(key.key_id)
    assert _call(client, method, path, body, good).status_code == 401


def test_probes_and_metrics_stay_open(env) -> None:
    _, _, client = env
    for method, path in OPEN:
        assert client.request(method, path).status_code == 200


def test_rate_limit_answers_429_with_retry_after(env) -> None:
    # broken: one runaway CRM job could starve every other caller
    _, store, client = env
    token, _ = store.create("slow", ["score"], rate_limit="3/minute")
    codes = [_call(client, "POST", "/v1/scores", {"customer_ids": ["C1"]}, token).status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    r = _call(client, "POST", "/v1/scores", {"customer_ids": ["C1"]}, token)
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert r.json()["error"]["code"] == "rate_limited"
    other, _ = store.create("other", ["score"], rate_limit="3/minute")
    assert _call(client, "POST", "/v1/scores", {"customer_ids": ["C1"]}, other).status_code == 200


def test_keys_cli_creates_lists_and_revokes_without_storing_the_key(env) -> None:
    settings, store, client = env
    runner = CliRunner()
    envs = {"LEADSCOPE_HOME": str(settings.home)}
    res = runner.invoke(cli, ["keys", "create", "--name", "crm", "--scope", "score", "--rate", "50/second"], env=envs)
    assert res.exit_code == 0, res.output
    token = res.stdout.strip().splitlines()[-1]
    assert token.startswith("lsk_")
    key_id = token.split("_")[1]
    with store.engine.connect() as c:
        dump = "\n".join(str(tuple(r)) for r in c.exec_driver_sql("select * from api_keys"))
    assert key_id in dump and token.split("_", 2)[2] not in dump and token not in dump
    listing = runner.invoke(cli, ["keys", "list"], env=envs)
    assert f"{key_id}\tcrm\tscore\t50/second\tactive" in listing.stdout and "lsk_" not in listing.stdout
    assert _call(client, "POST", "/v1/scores", {"customer_ids": ["C1"]}, token).status_code == 200
    assert runner.invoke(cli, ["keys", "revoke", key_id], env=envs).exit_code == 0
    assert _call(client, "POST", "/v1/scores", {"customer_ids": ["C1"]}, token).status_code == 401
    assert runner.invoke(cli, ["keys", "revoke", key_id], env=envs).exit_code == 2
    bad = runner.invoke(cli, ["keys", "create", "--name", "x", "--scope", "everything"], env=envs)
    assert bad.exit_code == 2 and "scopes: everything" in bad.output, bad.output


def test_first_run_creates_one_default_key_with_every_scope(tmp_path) -> None:
    # broken: `make run` would print a curl nobody can use, or mint a new key on every start
    from serving.keys import KeyCache
    from tests.conftest import small_settings

    settings = small_settings(tmp_path)
    store = KeyStore(settings.database_url)
    token = store.first_run_key()
    assert token and store.first_run_key() is None
    key = KeyCache(store, 0).verify(token)
    assert key is not None and key.name == "default" and key.scopes == set(SCOPES) and len(store.list()) == 1


def test_keys_list_in_a_folder_without_a_database_creates_none(tmp_path) -> None:
    # broken: `keys list` in the wrong directory silently created data/leadscope.db
    res = CliRunner().invoke(cli, ["keys", "list"], env={"LEADSCOPE_HOME": str(tmp_path)})
    assert res.exit_code == 2 and "no key database" in res.output
    assert not (tmp_path / "data").exists()


def test_the_in_process_rate_counter_sweeps_once_a_second_and_still_limits() -> None:
    # broken: a limits upgrade renamed MemoryStorage's private hook, and every hit starts a thread again (or the
    # override stopped counting)
    from limits import parse
    from limits.strategies import SlidingWindowCounterRateLimiter

    from serving.security import _Memory

    storage = _Memory()
    storage.timer.join()  # the constructor's first sweep (MemoryStorage.__init__, 10 ms)
    limiter = SlidingWindowCounterRateLimiter(storage)
    item = parse("5/minute")
    assert [limiter.hit(item, "k1") for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.hit(item, "k2")  # another key has its own count
    assert storage.timer.is_alive() and storage.timer.interval == _Memory.SWEEP_SECONDS
    started = storage.timer
    limiter.hit(item, "k2")
    assert storage.timer is started  # no new thread per hit
