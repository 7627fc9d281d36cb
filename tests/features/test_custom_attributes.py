"""Custom columns in a company's customers file become features without code changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import ingest
from features import store as feature_store
from tests.conftest import api_client, prepare, small_settings

pytestmark = pytest.mark.company  # generates a company in its tests (make test-fast skips it)


def test_twenty_new_columns_become_features_and_an_informative_one_explains_scores(tmp_path) -> None:
    # broken: companies' own attributes (HubSpot's gap) would be ignored, or need code to be used
    settings = small_settings(tmp_path, customers=3_000, seed=21)
    from leadscope.synth import generate

    company = generate(
        customers=settings.customers, seed=settings.seed, end=settings.world_end, days=settings.world_days
    )
    company.write(settings.raw_dir)
    customers = company.tables["customers"].copy()
    rng = np.random.default_rng(0)
    n = len(customers)
    truth = company.truth["customers"].set_index("customer_id").loc[customers["customer_id"]]
    for i in range(19):
        customers[f"extra_num_{i}" if i % 2 else f"extra_cat_{i}"] = (
            rng.normal(size=n) if i % 2 else rng.choice(["a", "b", "c"], n)
        )
    customers["crm_fit_score"] = np.round(truth["intent"].to_numpy() * 10 + rng.normal(0, 2, n), 1)
    path = tmp_path / "customers_with_attributes.parquet"
    customers.to_parquet(path, index=False)
    (settings.raw_dir / "customers.parquet").unlink()
    results = ingest.import_files(settings.raw_dir, {"customers": path})
    assert results[0].accepted == n and results[0].rejects.empty

    prepare(settings, train=True, generate_data=False)
    features = feature_store.feature_names(settings, "propensity_v2")
    new = {c for c in customers.columns if c.startswith("extra_") or c == "crm_fit_score"}
    assert len(new) == 20 and new <= set(features)

    leads = customers["customer_id"].sample(200, random_state=1).tolist()
    with api_client(settings, ("score",)) as client:
        items = client.post("/v1/scores", json={"customer_ids": leads}).json()["results"]
    top = [{r["feature"] for r in it["propensity"]["reasons"]} for it in items if it["propensity"]]
    share = np.mean(["crm_fit_score" in t for t in top])
    assert share >= 0.5, share
    label = next(r["label"] for it in items for r in it["propensity"]["reasons"] if r["feature"] == "crm_fit_score")
    assert label == "Crm fit score"
    assert pd.api.types.is_string_dtype(
        pd.read_parquet(settings.feature_dir / "customer_profile.parquet")["extra_cat_0"]
    )
