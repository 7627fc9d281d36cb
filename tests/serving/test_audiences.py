"""The audiences API: build, page, insight, export, and every refusal a marketer can run into."""

from __future__ import annotations

import io
import socket
import threading
import time

import pandas as pd
import pytest
from facebook_business.adobjects.serverside.normalize import Normalize
from google.ads.datamanager_util import Encoding, Formatter
from mlflow.tracking import MlflowClient

from serving.signals import hashing
from tests.conftest import api_client
from training import tracking

URL = "/v1/audiences/lookalike"


@pytest.fixture(scope="module")
def company(prepared):
    truth = pd.read_parquet(prepared.settings.raw_dir / "truth" / "customers.parquet")
    customers = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet")
    segment = truth.loc[truth["segment"], "customer_id"].tolist()
    return prepared.settings, segment, customers


@pytest.fixture(scope="module")
def client(company):
    settings, _, _ = company
    with api_client(settings) as c:
        yield c


@pytest.fixture(scope="module")
def audience(client, company):
    _, segment, _ = company
    r = client.post(URL, json={"seed_customer_ids": segment[:150] + ["nobody-1", "nobody-2"], "percent": 2})
    assert r.status_code == 201, r.text
    return r.json()


def test_build_reports_seed_resolution_and_pages_members(client, audience) -> None:
    assert audience["status"] == "ready" and audience["size"] == round(0.02 * audience["metrics"]["population"])
    assert audience["seed"] == {
        "given": 152,
        "distinct": 152,
        "resolved": 150,
        "unknown_count": 2,
        "unknown": ["nobody-1", "nobody-2"],
    }
    m = audience["metrics"]
    assert 0 <= m["val_recall_at_size"] <= 1 and m["method"] == "pu_lightgbm+embedding+graph"
    first = client.get(f"/v1/audiences/{audience['audience_id']}", params={"limit": 50}).json()
    rest = client.get(f"/v1/audiences/{audience['audience_id']}", params={"offset": 50, "limit": 1000}).json()
    ranks = [x["rank"] for x in first["members"] + rest["members"]]
    assert ranks == list(range(1, audience["size"] + 1)) and first["next_offset"] == 50 and rest["next_offset"] is None
    sims = [x["similarity"] for x in first["members"] + rest["members"]]
    assert sims == sorted(sims, reverse=True)


def test_each_build_is_one_mlflow_run(company, audience) -> None:
    settings, _, _ = company
    tracking.configure(settings)
    run = MlflowClient().get_run(audience["metrics"]["mlflow_run_id"])
    assert run.data.params["audience_id"] == audience["audience_id"] and run.data.params["seed_resolved"] == "150"
    assert "val_auc_pu" in run.data.metrics


def test_same_seed_same_members(client, company, audience) -> None:
    _, segment, _ = company
    again = client.post(URL, json={"seed_customer_ids": list(reversed(segment[:150])), "percent": 2}).json()
    page = lambda a: client.get(f"/v1/audiences/{a}", params={"limit": 10_000}).json()["members"]  # noqa: E731
    assert page(again["audience_id"]) == page(audience["audience_id"])


@pytest.mark.parametrize(
    ("body", "status", "code", "field", "text"),
    [
        ({"percent": 1}, 422, "seed_too_small", "seed_customer_ids", "99 of 99 distinct ids resolved"),
        ({"percent": 1, "all_unknown": True}, 422, "seed_too_small", "seed_customer_ids", "0 of 200 distinct"),
        ({"percent": 0}, 422, "invalid_request", "percent", "greater than or equal to 0.1"),
        ({"percent": 50}, 422, "invalid_request", "percent", "less than or equal to 10"),
        ({}, 422, "invalid_request", None, "exactly one of size and percent"),
        ({"percent": 1, "size": 10}, 422, "invalid_request", None, "exactly one of size and percent"),
        ({"size": 3000}, 422, "invalid_request", "size", "at most 10% of the population"),
        ({"percent": 1, "exclude": ["everyone"]}, 422, "invalid_request", "exclude.0", "seed"),
    ],
)
def test_bad_requests_are_refused_with_the_field_named(client, company, body, status, code, field, text) -> None:
    _, segment, _ = company
    body = dict(body)
    if body.pop("all_unknown", False):
        seed = [f"X{i}" for i in range(200)]
    else:
        seed = segment[:99] if code == "seed_too_small" else segment[:150]
    r = client.post(URL, json={"seed_customer_ids": seed, **body})
    err = r.json()["error"]
    assert r.status_code == status and err["code"] == code and text in err["message"], r.text
    if field:
        assert err["field"] == field


def test_unknown_audience_is_404(client) -> None:
    for path in ("/v1/audiences/aud_nope", "/v1/audiences/aud_nope/insight", "/v1/audiences/aud_nope/export"):
        r = client.get(path, params={"format": "meta"})
        assert r.status_code == 404 and r.json()["error"]["field"] == "audience_id"


def test_large_audience_builds_in_background_and_cannot_export_until_ready(company) -> None:
    settings, segment, _ = company
    with api_client(settings.model_copy(update={"audience_sync_max": 10})) as c:
        gate = threading.Event()
        c.app.state.audience_pool.submit(gate.wait, 60)  # the worker is busy: the build waits in line
        r = c.post(URL, json={"seed_customer_ids": segment[:150], "size": 100})
        assert r.status_code == 202 and r.json()["status"] == "running"
        aid = r.json()["audience_id"]
        for path in (f"/v1/audiences/{aid}/export", f"/v1/audiences/{aid}/insight"):
            r = c.get(path, params={"format": "google"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "not_ready"
        gate.set()
        deadline = time.monotonic() + 60
        while (found := c.get(f"/v1/audiences/{aid}").json())["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert found["status"] == "ready" and len(found["members"]) == 100


def test_a_build_orphaned_by_a_restart_is_marked_failed(company) -> None:
    from serving.audiences.store import AudienceStore, Request, audiences

    settings, _, _ = company
    store = AudienceStore(settings.database_url)
    aid = store.create(Request(["C1"], 10, None, ("seed",), "x"), 10, {"given": 1})
    with store.engine.begin() as conn:  # as if a process that has since died had started it
        conn.execute(
            audiences.update().where(audiences.c.audience_id == aid).values(owner=f"{socket.gethostname()}:999999")
        )
    assert store.orphans_failed() >= 1
    assert store.get(aid)["status"] == "failed" and "restart" in store.get(aid)["error"]


def test_insight_names_the_segment_footprint(client, audience) -> None:
    aid = audience["audience_id"]
    r = client.get(f"/v1/audiences/{aid}/insight", params={"cross": "age_band,competitor_purchase"})
    assert r.status_code == 200, r.text
    rep = r.json()
    found = {(x["attribute"], x["value"]): x for x in rep["distinguishing"]}
    # the generator's hidden segment leans to analytics, competitor buyers and tech
    assert any(k in found for k in [("interest", "analytics"), ("competitor_purchase", "yes"), ("industry", "tech")])
    for x in found.values():
        assert x["lift_low"] <= x["lift"] <= x["lift_high"] and (x["lift_low"] > 1 or x["lift_high"] < 1)
    assert sum(c["audience_count"] for c in rep["cross"]["cells"]) == audience["size"]
    ec = rep["expected_conversion"]
    assert ec["model"] == "propensity" and 0 <= ec["rate"] <= 1 and ec["leads"] <= audience["size"]
    r = client.get(f"/v1/audiences/{aid}/insight", params={"compare": aid})
    o = r.json()["overlap"]
    assert o["intersection"] == o["size"] == audience["size"] and o["jaccard"] == 1.0
    r = client.get(f"/v1/audiences/{aid}/insight", params={"cross": "age_band,shoe_size"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "cross"


def test_exports_hash_like_the_platform_sdks_and_hold_no_raw_pii(client, company, audience) -> None:
    # broken: an upload rejected by the platform, or raw e-mails and phones leaving the building
    _, _, customers = company
    aid = audience["audience_id"]
    members = pd.DataFrame(client.get(f"/v1/audiences/{aid}", params={"limit": 10_000}).json()["members"])
    people = members.merge(customers, on="customer_id")
    consenting = people[people["consent_ads"]]
    fmt = Formatter()
    for platform in ("meta", "google"):
        r = client.get(f"/v1/audiences/{aid}/export", params={"format": platform})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = pd.read_csv(io.StringIO(r.text), dtype=str, keep_default_na=False)
        assert len(rows) == int(r.headers["x-leadscope-rows"]) == len(consenting)
        assert int(r.headers["x-leadscope-without-ads-consent"]) == len(people) - len(consenting)
        for col in ("email", "phone", "first_name", "last_name"):
            for v in people[col].dropna():
                assert str(v).strip().lower() not in r.text.lower()
        for (_, p), (_, row) in zip(consenting.iterrows(), rows.iterrows(), strict=True):
            phone = hashing.e164(p["phone"], p["country"]) if isinstance(p["phone"], str) else None
            if platform == "meta":
                assert row["email"] == (Normalize.normalize_field("em", p["email"]) if p["email"] else "")
                assert row["phone"] == (Normalize.normalize_field("ph", phone) if phone else "")
                assert row["fn"] == Normalize.normalize_field("fn", p["first_name"])
                assert row["ln"] == Normalize.normalize_field("ln", p["last_name"])
                assert row["country"] == Normalize.normalize_field("country", p["country"])
                assert 0 <= float(row["value"]) <= 1
            else:
                assert row["Email"] == (fmt.process_email_address(p["email"], Encoding.HEX) if p["email"] else "")
                assert row["Phone"] == (fmt.process_phone_number(phone, Encoding.HEX) if phone else "")
                assert row["First Name"] == fmt.process_given_name(p["first_name"], Encoding.HEX)
                assert row["Last Name"] == fmt.process_family_name(p["last_name"], Encoding.HEX)
                assert row["Country"] == p["country"]
    r = client.get(f"/v1/audiences/{aid}/export", params={"format": "tiktok"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.format"
