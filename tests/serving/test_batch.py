"""Batch scoring (NDJSON over HTTP, parquet from the CLI) and the online feature cache."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from features import store as feature_store
from leadscope.cli import app as cli
from serving.state import ServingState
from tests.conftest import api_client


@pytest.fixture(scope="module")
def client(prepared):
    with api_client(prepared.settings, ("score",)) as c:
        yield c


@pytest.fixture(scope="module")
def ids(prepared) -> list[str]:
    return pd.read_parquet(prepared.settings.raw_dir / "customers.parquet", columns=["customer_id"])[
        "customer_id"
    ].tolist()


def test_ndjson_batch_streams_every_id_in_order_with_the_same_scores(client, ids) -> None:
    # broken: a CRM scoring its whole base would get a different answer than one id at a time, or lose rows
    batch = ids + ["NOT-A-CUSTOMER"]
    with client.stream(
        "POST", "/v1/scores/batch", json={"customer_ids": batch, "models": ["propensity", "churn"]}
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        models = dict(m.split(":") for m in r.headers["x-leadscope-models"].split(","))
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert set(models) == {"propensity", "churn"}
    assert [x["customer_id"] for x in lines] == batch and len(lines) > 2_000  # more than one chunk
    assert lines[-1]["error"]["code"] == "unknown_customer" and lines[-1]["propensity"] is None
    single = client.post("/v1/scores", json={"customer_ids": batch[:50], "models": ["propensity", "churn"]}).json()
    for a, b in zip(single["results"], lines[:50], strict=True):
        assert a["propensity"] == b["propensity"] and a["churn"] == b["churn"]


def test_batch_refuses_bad_bodies_like_the_single_route(client) -> None:
    assert client.post("/v1/scores/batch", json={"customer_ids": []}).status_code == 422
    r = client.post("/v1/scores/batch", json={"customer_ids": ["C1"], "models": ["nope"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "models.0"


def test_cli_score_writes_one_row_per_id_matching_the_api(client, prepared, ids, tmp_path) -> None:
    src = tmp_path / "ids.csv"
    pd.DataFrame({"customer_id": ids[:3000] + ["NOT-A-CUSTOMER"]}).to_csv(src, index=False)
    out = tmp_path / "scores.parquet"
    env = {"LEADSCOPE_HOME": str(prepared.settings.home)}
    args = ["score", "--input", str(src), "--models", "propensity,value", "--out", str(out), "--chunk", "1000"]
    res = CliRunner().invoke(cli, args, env=env)
    assert res.exit_code == 0, res.output
    frame = pd.read_parquet(out)
    assert len(frame) == 3001 and frame["customer_id"].tolist()[:5] == ids[:5]
    assert frame["error"].notna().sum() == 1 and frame["error"].iloc[-1] == "unknown_customer"
    assert {"propensity_probability", "propensity_grade", "propensity_reason_1", "value_expected_spend_90d"} <= set(
        frame
    )
    api = client.post("/v1/scores", json={"customer_ids": ids[:20], "models": ["propensity", "value"]}).json()
    for row, item in zip(frame.head(20).itertuples(), api["results"], strict=True):
        assert row.propensity_probability == item["propensity"]["probability"]
        assert row.value_expected_spend_90d == item["value"]["expected_spend_90d"]
    bad = CliRunner().invoke(cli, ["score", "--input", str(src), "--models", "lifetime", "--out", str(out)], env=env)
    assert bad.exit_code == 2 and "--models: unknown model lifetime" in bad.output, bad.output


def test_cached_rows_equal_fresh_reads_and_a_new_materialisation_empties_the_cache(prepared, ids) -> None:
    # broken: the cache would serve features that a newer materialisation replaced
    state = ServingState(prepared.settings)
    state.load()
    online = state.online
    fresh = online.read("propensity", ids[:300])
    first = online.rows("propensity", ids[:300])
    cached = online.rows("propensity", ids[:300])
    assert first == fresh == cached and len(online.cache) == 300
    mixed = online.rows("propensity", [ids[0], "NOT-A-CUSTOMER", ids[400]])
    assert mixed == online.read("propensity", [ids[0], "NOT-A-CUSTOMER", ids[400]])
    assert state.refresh() == [] and len(online.cache) == 302
    feature_store.materialize(feature_store.open_store(prepared.settings), prepared.settings)
    assert state.refresh() == ["features: new materialisation"] and len(online.cache) == 0
    assert online.rows("propensity", ids[:300]) == fresh


def test_cached_scores_equal_fresh_ones_and_prewarm_fills_the_cache(prepared, ids) -> None:
    # broken: a stored answer would differ from computing it now, or the prewarm would leave customers out
    from serving import scoring

    cached = ServingState(prepared.settings)
    cached.load()
    plain = ServingState(prepared.settings.model_copy(update={"feature_cache_size": 0}))
    plain.load()
    n = scoring.prewarm(cached)
    known = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet")["customer_id"].nunique()
    assert n == known and not cached.warming and len(cached.online.cache) == 2 * n  # a feature row and an answer each
    assert scoring.prewarm(plain) == 0  # no cache, nothing to warm
    asked = [*ids[:200], "NOT-A-CUSTOMER", ids[0]]
    for models in (["propensity"], ["propensity", "churn", "value"]):
        a = scoring.score_items(cached, models, asked)
        b = scoring.score_items(plain, models, asked)
        assert [x.model_dump() for x in a] == [x.model_dump() for x in b]
