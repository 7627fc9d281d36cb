"""The production profile against real servers: MLflow tracking/registry and the service tables (API keys) in
PostgreSQL, the Feast online store and the shared rate-limit counters in Redis.

Runs when LEADSCOPE_POSTGRES_URL and LEADSCOPE_REDIS_URL are set (.ci/run sets them); each run gets its own
fresh PostgreSQL database (dropped afterwards) and its own Redis database number."""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import pytest
import redis

from leadscope.settings import Settings
from serving.keys import KeyStore
from tests.conftest import api_client, prepare, small_settings

PG = os.environ.get("LEADSCOPE_POSTGRES_URL")
REDIS = os.environ.get("LEADSCOPE_REDIS_URL")
REDIS_DB = 11  # kept apart from db 0, which the other Redis test and developers use

pytestmark = pytest.mark.skipif(
    not (PG and REDIS), reason="LEADSCOPE_POSTGRES_URL and LEADSCOPE_REDIS_URL not set: no servers to test against"
)


@pytest.fixture(scope="module")
def servers():
    import psycopg

    name = f"leadscope_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(PG)
    pg_url = urlunsplit(parts._replace(path=f"/{name}"))
    r = urlsplit(REDIS)
    redis_url = urlunsplit(r._replace(path=f"/{REDIS_DB}"))
    redis.Redis.from_url(redis_url).flushdb()
    yield pg_url, redis_url
    redis.Redis.from_url(redis_url).flushdb()
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_production_profile_needs_both_servers() -> None:
    with pytest.raises(ValueError, match="LEADSCOPE_REDIS_URL"):
        Settings(profile="production", postgres_url="postgresql://x@127.0.0.1/db", redis_url=None)


def test_train_register_and_serve_on_postgres_and_redis(servers, tmp_path) -> None:
    # broken: the documented production set-up would not run, or silently fall back to local files
    pg_url, redis_url = servers
    settings = small_settings(
        tmp_path,
        customers=1_500,
        seed=3,
        profile="production",
        postgres_url=pg_url,
        redis_url=redis_url,
        key_cache_seconds=0,
    )
    assert settings.online_store == "redis" and settings.mlflow_uri.startswith("postgresql+psycopg://")
    prepare(settings, train=False)
    from training import propensity

    metrics = propensity.train(settings)
    assert metrics["alias"] == "champion" and metrics["roc_auc"] > 0.7
    assert not (tmp_path / "mlruns" / "mlflow.db").exists() and not (tmp_path / "data" / "leadscope.db").exists()

    import psycopg

    with psycopg.connect(pg_url) as conn:
        versions = conn.execute("select name, version from model_versions").fetchall()
        assert ("propensity", 1) in [(n, int(v)) for n, v in versions]
    r = redis.Redis.from_url(redis_url)
    assert r.dbsize() > 1_000  # Feast rows per customer and view

    ids = (
        pd.read_parquet(settings.raw_dir / "customers.parquet", columns=["customer_id"])["customer_id"].head(5).tolist()
    )
    with api_client(settings, ("score",)) as client:
        ready = client.get("/readyz").json()
        assert ready["ready"] and ready["feature_store"] == "ok"
        body = client.post("/v1/scores", json={"customer_ids": ids}).json()
        assert all(0 < it["propensity"]["probability"] < 1 for it in body["results"])
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("select count(*) from api_keys").fetchone()[0] >= 1

        slow, _ = KeyStore(settings.database_url).create("slow", ["score"], "2/minute")
        codes = [
            client.post(
                "/v1/scores", json={"customer_ids": ids[:1]}, headers={"authorization": f"Bearer {slow}"}
            ).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        assert any(b"LIMITS" in k for k in r.keys("*LIMITS*"))  # counters shared by every worker, in Redis

        event = {
            "event_id": "pg-1",
            "customer_id": ids[0],
            "ts": "2026-11-20T10:00:00Z",
            "stage": "won",
            "value": 99.5,
            "currency": "EUR",
            "email": "someone@example.com",
        }
        admin = KeyStore(settings.database_url).create("conv", ["conversions"])[0]
        auth = {"authorization": f"Bearer {admin}"}
        for expected in (1, 0):  # the second post is a duplicate
            r = client.post("/v1/conversions", json={"events": [event]}, headers=auth)
            assert r.status_code == 202 and r.json()["accepted"] == expected
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("select value, identifiers from conversion_events where event_id = 'pg-1'").fetchone()
            assert row[0] == 99.5 and "someone@example.com" not in row[1]

    # audiences and next-best-action keep their tables and models in PostgreSQL too
    from training import nba

    assert nba.train(settings)["version"] == "1"
    truth = pd.read_parquet(settings.raw_dir / "truth" / "customers.parquet")
    seed = truth.loc[truth["segment"], "customer_id"].head(100).tolist()
    with api_client(settings, ("audiences", "score")) as client:
        r = client.post("/v1/audiences/lookalike", json={"seed_customer_ids": seed, "size": 30})
        assert r.status_code == 201 and r.json()["status"] == "ready", r.text
        audience_id = r.json()["audience_id"]
        r = client.post("/v1/next-best-action", json={"customer_ids": ids})
        assert r.status_code == 200 and r.json()["model"]["version"] == "1"
        assert all(it["recommended"] for it in r.json()["items"])
    with psycopg.connect(pg_url) as conn:
        n = conn.execute("select count(*) from audience_members where audience_id = %s", (audience_id,)).fetchone()
        assert n[0] == 30
        assert ("uplift", 1) in [(a, int(v)) for a, v in conn.execute("select name, version from model_versions")]
