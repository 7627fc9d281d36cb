"""POST /v1/leads/score: a lead that is not stored, scored from inline attributes and events with the batch
build's own feature functions; nothing written; bad input a 422 naming the field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.store import open_store
from leadscope.schema import PII_COLUMNS
from tests.conftest import api_client


@pytest.fixture(scope="module")
def client(prepared):
    with api_client(prepared.settings, ("score",)) as c:
        yield c


def _lead(prepared) -> dict:  # noqa: ANN001
    """A stored customer's attributes (not its id or contact details), as a CRM would send a new lead."""
    row = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet").iloc[11]
    attrs = {
        k: (v.item() if isinstance(v, np.generic) else v)
        for k, v in row.items()
        if k not in PII_COLUMNS and k not in ("customer_id", "created_at") and pd.notna(v)
    }
    return {"created_at": "2026-06-10T09:00:00Z", "attributes": attrs}


def test_a_warm_lead_scores_higher_with_its_buying_signals_and_says_why(client, prepared) -> None:
    lead, at = _lead(prepared), "2026-06-30T00:00:00Z"
    cold = client.post("/v1/leads/score", json={"lead": lead, "as_of": at})
    assert cold.status_code == 200, cold.text
    signals = [
        {"ts": f"2026-06-{d}T10:00:00Z", "channel": "web", "event_type": t}
        for d, t in ((20, "pricing_view"), (24, "pricing_view"), (27, "pricing_view"), (28, "form_submit"))
    ]
    warm = client.post("/v1/leads/score", json={"lead": lead, "events": signals, "as_of": at})
    assert warm.status_code == 200, warm.text
    p_cold, p_warm = (r.json()["scores"]["propensity"] for r in (cold, warm))
    assert p_warm["probability"] > p_cold["probability"], (p_cold, p_warm)
    # the reasons move with the signals (without them, "no touches" weighs against the lead)
    assert [r["feature"] for r in p_warm["reasons"]] != [r["feature"] for r in p_cold["reasons"]]
    again = client.post("/v1/leads/score", json={"lead": lead, "events": signals, "as_of": at})
    assert again.json() == warm.json()  # nothing stored: the same lead gives the same answer
    store = open_store(prepared.settings)
    online = store.get_online_features(
        features=["customer_profile:country"], entity_rows=[{"customer_id": "__inline_lead__"}]
    )
    assert online.to_dict()["country"] == [None]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            lambda b: b["events"].append({"ts": "2026-06-01T00:00:00Z", "channel": "fax", "event_type": "x"}),
            "events.0.channel",
        ),
        (lambda b: b["lead"]["attributes"].update(shoe_size=44), "lead.attributes.shoe_size"),
        (
            lambda b: b["events"].append({"ts": "2027-01-01T00:00:00Z", "channel": "web", "event_type": "page_view"}),
            "events.0.ts",
        ),
        (lambda b: b.update(models=["nope"]), "models.0"),
        (lambda b: b["lead"].update(created_at="yesterday"), "lead.created_at"),
    ],
)
def test_bad_inline_leads_are_a_422_naming_the_field(client, prepared, change, field) -> None:
    body = {"lead": _lead(prepared), "events": [], "as_of": "2026-06-30T00:00:00Z"}
    change(body)
    r = client.post("/v1/leads/score", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field, r.json()
