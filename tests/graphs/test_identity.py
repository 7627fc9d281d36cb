"""Identity stitching: normalisation, the sharing guard, and quality against planted duplicates."""

from __future__ import annotations

import pandas as pd

from graphs.identity import normalise_email, normalise_phone, pair_scores, resolve
from leadscope.synth import generate
from tests.leadscope.test_synth import END


def test_normalisers() -> None:
    assert normalise_email("  Anna.Smith+news@GoogleMail.com ") == "annasmith@gmail.com"
    assert normalise_email("A.B@Example.com") == "a.b@example.com"
    assert normalise_email("not-an-email") is None
    assert normalise_phone("(650) 555-1234", "US") == normalise_phone("+1 650 5551234", "CN") == "+16505551234"
    assert normalise_phone("138-15551234", "CN") == "+8613815551234"


def test_shared_identifier_is_guarded_and_reported() -> None:
    # broken: one shop phone typed in for many walk-ins would merge strangers into one "person"
    shop = "+1 650 5550100"
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(8)],
            "created_at": pd.Timestamp("2026-01-01", tz="UTC"),
            "email": ["x@a.com", " X@A.com", None, None, None, None, None, None],
            "phone": [None, None, shop, shop, shop, shop, shop, shop],
            "country": "US",
        }
    )
    r = resolve(customers, max_share=5)
    assert r.person["c0"] == r.person["c1"]
    assert r.person[[f"c{i}" for i in range(2, 8)]].nunique() == 6
    assert r.guarded[["kind", "records"]].values.tolist() == [["phone", 6]]
    assert "555" not in r.guarded.to_string()  # reported by fingerprint, never by value
    merged = r.merges.set_index("person_id").loc[r.person["c0"]]
    assert merged["records"] == 2 and merged["linked_by"] == "email"


def test_precision_and_recall_on_planted_duplicates() -> None:
    company = generate(customers=6_000, seed=5, end=END, days=300)
    truth = company.truth["customers"].set_index("customer_id")["person_id"]
    scores = pair_scores(resolve(company.tables["customers"]).person, truth)
    assert scores["true_pairs"] > 50
    assert scores["precision"] >= 0.99 and scores["recall"] >= 0.95, scores


def test_pair_scores_on_known_labelings() -> None:
    truth = pd.Series(["p1", "p1", "p2", "p2", "p3"], index=list("abcde"))
    pred = pd.Series(["x", "x", "x", "y", "z"], index=list("abcde"))
    s = pair_scores(pred, truth)
    assert s["precision"] == 1 / 3 and s["recall"] == 1 / 2
