"""Metrics, request ids, JSON logs without personal data, and readiness while models load."""

from __future__ import annotations

import io
import json
import logging
import re
import threading

import pandas as pd
import pytest

from serving import observability
from serving.state import ServingState
from tests.conftest import api_client

PII = ["jane.doe+crm@example.com", "Jane.Doe@Example.COM", "+86 138 0013 8000", "(415) 555-0132", "4155550132"]


@pytest.fixture(scope="module")
def client(prepared, tmp_path_factory):
    svc = tmp_path_factory.mktemp("svc")  # conversions land in their own service database
    for name in ("raw", "features", "feature_repo"):
        (svc / name).symlink_to(prepared.settings.resolve(prepared.settings.data_dir) / name)
    with api_client(prepared.settings.model_copy(update={"data_dir": svc}), ("admin",)) as c:
        yield c


@pytest.fixture(scope="module")
def ids(prepared) -> list[str]:
    frame = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet", columns=["customer_id"])
    return frame["customer_id"].head(40).tolist()


def _sample(text: str, name: str, default: float | None = None, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    if default is not None:
        return default
    raise AssertionError(f"{name}{{{want}}} not in /metrics")


def test_metrics_show_latency_errors_model_versions_and_score_distribution(client, ids) -> None:
    # broken: operators could not see latency, failures, which model answers, or score drift
    before = client.get("/metrics").text
    n_before = _sample(before, "leadscope_http_request_duration_seconds_count", 0, method="POST", route="/v1/scores")
    assert client.post("/v1/scores", json={"customer_ids": ids}).status_code == 200
    assert client.post("/v1/scores", json={"customer_ids": []}).status_code == 422
    assert (
        client.post("/v1/scores", json={"customer_ids": ids}, headers={"authorization": "Bearer x"}).status_code == 401
    )
    text = client.get("/metrics").text
    assert (
        _sample(text, "leadscope_http_request_duration_seconds_count", method="POST", route="/v1/scores")
        == n_before + 3
    )
    assert _sample(text, "leadscope_http_request_duration_seconds_bucket", route="/v1/scores", le="+Inf") >= 3
    assert _sample(text, "leadscope_http_errors_total", route="/v1/scores", status="401") >= 1
    assert _sample(text, "leadscope_http_errors_total", route="/v1/scores", status="422") >= 1
    version = client.app.state.serving.models["propensity"].version
    assert _sample(text, "leadscope_model_info", model="propensity", version=version) == 1
    assert _sample(text, "leadscope_score_probability_count", model="propensity") >= len(ids)
    client.get("/no/such/path/C0000001")
    assert 'route="unmatched"' in client.get("/metrics").text and "C0000001" not in client.get("/metrics").text


def test_request_id_is_echoed_or_generated(client) -> None:
    r = client.get("/healthz", headers={"x-request-id": "crm-req-42"})
    assert r.headers["x-request-id"] == "crm-req-42"
    generated = client.get("/healthz", headers={"x-request-id": "bad id with spaces\n"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)


def test_logs_are_json_with_request_id_and_carry_no_personal_data(client, ids) -> None:
    # broken: e-mails and phones posted by a CRM would end up in log storage
    buf = io.StringIO()
    h = observability.handler("json", buf)
    root = logging.getLogger()
    root.addHandler(h)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        client.post("/v1/scores", json={"customer_ids": PII}, headers={"x-request-id": "pii-test-1"})
        client.post("/v1/scores", json={"customer_ids": [ids[0], 42, PII[0]], "email": PII[1]})
        client.post(
            "/v1/scores",
            content=f'{{"customer_ids": ["{PII[2]}"'.encode(),
            headers={"content-type": "application/json"},
        )
        client.post("/v1/scores/batch", json={"customer_ids": PII + ids[:2], "models": ["propensity", "churn"]})
        client.get("/v1/scores", params={"email": PII[0], "phone": PII[2]})
        events = [
            {"event_id": f"pii-{i}", "customer_id": ids[i], "ts": "2026-11-20T10:00:00Z", "stage": "mql", "email": e}
            for i, e in enumerate(PII[:2])
        ]
        events.append(
            {
                "event_id": "pii-9",
                "customer_id": ids[3],
                "ts": "2026-11-20T10:00:00Z",
                "stage": "sql",
                "phone": PII[2],
                "first_name": "Jane",
                "last_name": "Doe-Smithson",
            }
        )
        assert client.post("/v1/conversions", json={"events": events}).status_code == 202
        bad = {
            "event_id": "pii-x",
            "customer_id": ids[4],
            "ts": "2026-11-20T10:00:00Z",
            "stage": "won",
            "email": PII[0],
        }
        assert client.post("/v1/conversions", json={"events": [bad]}).status_code == 422
        bad_phone = {**bad, "stage": "mql", "phone": "55501"}
        assert client.post("/v1/conversions", json={"events": [bad_phone]}).status_code == 422
        logging.getLogger("some.library").warning("failed for %s / %s", PII[1], PII[3])  # a careless library
    finally:
        root.removeHandler(h)
        root.setLevel(old)
    text = buf.getvalue()
    records = [json.loads(line) for line in text.splitlines()]
    access = [r for r in records if r["logger"] == "leadscope.access"]
    assert len(access) >= 5
    first = next(r for r in access if r["request_id"] == "pii-test-1")
    assert first["route"] == "/v1/scores" and first["status"] == 200 and first["duration_ms"] > 0
    assert {"ts", "level", "message", "key_id"} <= set(first)
    for value in PII + [v.lower() for v in PII] + ["138 0013 8000", "555-0132", "Doe-Smithson", "55501"]:
        assert value not in text, value
    assert "<email>" in text and "<phone>" in text


def test_readiness_is_false_and_scores_refused_until_models_are_loaded(prepared, monkeypatch, ids) -> None:
    # broken: a load balancer would send CRM traffic to a worker that cannot score yet
    release = threading.Event()
    real = ServingState.load

    def slow_load(self, *a, **kw):  # noqa: ANN001, ANN002, ANN003
        release.wait(60)
        real(self, *a, **kw)

    monkeypatch.setattr(ServingState, "load", slow_load)
    with api_client(prepared.settings, ("score",), wait=False) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["loading"] is True
        r = c.post("/v1/scores", json={"customer_ids": ids[:1]})
        assert r.status_code == 503 and r.json()["error"]["code"] == "loading"
        release.set()
        for _ in range(600):
            if c.app.state.serving.loaded:
                break
            threading.Event().wait(0.05)
        assert c.get("/readyz").status_code == 200
        assert c.post("/v1/scores", json={"customer_ids": ids[:1]}).status_code == 200
