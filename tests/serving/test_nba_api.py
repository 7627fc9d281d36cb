"""POST /v1/next-best-action on the prepared company: contract, guarantees and refusals."""

from __future__ import annotations

import pandas as pd
import pytest

from leadscope import catalogue as catalogue_lib
from tests.conftest import api_client

URL = "/v1/next-best-action"


@pytest.fixture(scope="module")
def client(prepared):
    with api_client(prepared.settings, ("score",)) as c:
        yield c


def test_ranked_actions_pay_respect_consent_and_explain(client, prepared) -> None:
    customers = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet").set_index("customer_id")
    ids = customers.index[:300].tolist()
    r = client.post(URL, json={"customer_ids": ids + ["nobody"], "max_actions": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"]["name"] == "uplift" and body["model"]["feature_service"] == "uplift_v1"
    items = body["items"]
    assert [i["customer_id"] for i in items] == ids + ["nobody"]
    assert items[-1]["error"]["code"] == "unknown_customer"
    cat = catalogue_lib.load()
    channel_of = {a.id: a for a in cat.actions}
    recommended = set()
    for item in items[:-1]:
        acts = item["actions"]
        assert len(acts) <= 3 and [a["expected_incremental_value"] for a in acts] == sorted(
            (a["expected_incremental_value"] for a in acts), reverse=True
        )
        for a in acts:
            assert a["uplift"] > 0 and a["expected_incremental_value"] > 0  # negative uplift never offered
            assert a["expected_incremental_value"] == pytest.approx(a["uplift"] * a["value"] - a["cost"], abs=0.02)
            assert len(a["reasons"]) == 3 and all(r["label"] for r in a["reasons"])
        rec = item["recommended"]
        recommended.add(rec)
        assert rec == (acts[0]["action_id"] if acts else cat.nothing.id)
        c = customers.loc[item["customer_id"]]
        if rec != cat.nothing.id and channel_of[rec].eligibility.consent == "email":
            assert bool(c["consent_email"])
        if rec != cat.nothing.id and channel_of[rec].eligibility.reachable == "phone":
            assert isinstance(c["phone"], str)
        listed = {a["action_id"] for a in acts} | {e["action_id"] for e in item["excluded"]}
        assert listed == {a.id for a in cat.contacts}
    assert len(recommended) >= 3  # the policy differs between customers


def test_bad_requests_get_a_422_naming_the_field(client) -> None:
    for body, field in (
        ({"customer_ids": []}, "customer_ids"),
        ({"customer_ids": [f"C{i}" for i in range(1001)]}, "customer_ids"),
        ({"customer_ids": [1]}, "customer_ids.0"),
        ({"customer_ids": ["C1"], "max_actions": 0}, "max_actions"),
        ({"customer_ids": ["C1"], "extra": 1}, "extra"),
    ):
        r = client.post(URL, json=body)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (body, r.text)
