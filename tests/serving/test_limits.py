"""Limits that callers cannot get around: body size (declared or chunked), ids per request, huge JSON
numbers and strings, and the timeout to the first response byte."""

from __future__ import annotations

import json

import pytest

from tests.conftest import api_client


@pytest.fixture(scope="module")
def client(prepared):
    settings = prepared.settings.model_copy(update={"max_body_bytes": 8192, "max_batch_body_bytes": 200_000})
    with api_client(settings, ("score",)) as c:
        yield c


def _chunks(payload: bytes, size: int = 512):
    for i in range(0, len(payload), size):
        yield payload[i : i + size]


def test_body_over_the_limit_is_413_declared_or_chunked(client) -> None:
    # broken: a 2 GB body (or a chunked one that never says its size) would be read into memory
    big = json.dumps({"customer_ids": [f"C{i:07d}" for i in range(1000)]}).encode()
    assert len(big) > 8192
    r = client.post("/v1/scores", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    r = client.post("/v1/scores", content=_chunks(big), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    small = json.dumps({"customer_ids": ["C0000001"]}).encode()
    assert (
        client.post("/v1/scores", content=_chunks(small, 5), headers={"content-type": "application/json"}).status_code
        == 200
    )
    r = client.post("/v1/scores", content=b"{}", headers={"content-type": "application/json", "content-length": "x"})
    assert r.status_code in (400, 422)


def test_batch_route_has_its_own_larger_body_limit(client) -> None:
    ids = [f"C{i:07d}" for i in range(1000)]
    r = client.post("/v1/scores/batch", json={"customer_ids": ids})
    assert r.status_code == 200 and len(r.text.splitlines()) == 1000
    r = client.post("/v1/scores/batch", json={"customer_ids": ids * 20})
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b'{"customer_ids": [' + b"9" * 5000 + b"]}", 422, None),  # over Python's int-digit limit
        (b'{"customer_ids": ["\xff\xfe"]}', 422, None),  # not UTF-8
        (b'{"customer_ids": [1e999999]}', 422, "customer_ids.0"),  # parses as inf: not a string
        (b'{"customer_ids": ["' + b"A" * 3000 + b'"]}', 422, "customer_ids.0"),  # longer than 128
        (b'{"customer_ids": ["C1"], "models": [' + b"1" * 4000 + b"]}", 422, "models.0"),
        (b'{"customer_ids": ' + b"[" * 1500 + b"]" * 1500 + b"}", None, None),  # deep nesting
    ],
)
def test_huge_numbers_strings_and_nesting_are_clean_4xx(client, raw, status, field) -> None:
    # broken: a crafted body would burn CPU or end in a 500
    r = client.post("/v1/scores", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.status_code
    assert status is None or r.status_code == status
    err = r.json()["error"]
    assert err["code"] and err["message"]
    if field:
        assert err["field"] == field


def test_no_response_within_the_timeout_is_504_but_a_started_stream_runs_on(prepared) -> None:
    settings = prepared.settings.model_copy(update={"request_timeout_seconds": 0.005})
    import pandas as pd

    ids = pd.read_parquet(settings.raw_dir / "customers.parquet", columns=["customer_id"])["customer_id"].tolist()
    with api_client(settings, ("score",)) as c:
        r = c.post("/v1/scores", json={"customer_ids": ids[:3000], "models": ["propensity", "churn", "value"]})
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        r = c.post("/v1/scores/batch", json={"customer_ids": ids[:3000], "models": ["propensity", "churn", "value"]})
        assert r.status_code == 200 and len(r.text.splitlines()) == 3000
