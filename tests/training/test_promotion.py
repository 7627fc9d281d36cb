"""Champion/challenger: a worse model is refused, an equal one promoted, and a running server switches to it
without a failed request."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from benchmarks._load import free_port, start_server
from leadscope.cli import app
from tests.conftest import prepare, small_settings
from training import dataset, pipeline, promotion, propensity, tracking

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.company  # generates a company in its tests (make test-fast skips it)


def _request_loop(url: str, body: dict, headers: dict, stop: threading.Event, seen: list) -> None:
    with httpx.Client(timeout=10, headers=headers) as client:
        while not stop.is_set():
            r = client.post(url, json=body)
            seen.append((r.status_code, r.json()["models"][0]["version"] if r.status_code == 200 else None))


def versions_seen(seen: list) -> list:
    out: list = []
    for _, v in seen:
        if not out or out[-1] != v:
            out.append(v)
    return out


def test_psi_is_zero_for_the_same_data_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    a = pd.Series(rng.normal(size=5000))
    assert promotion.psi(a, a) < 1e-9
    assert promotion.psi(a, a + 1.5) > 0.5
    assert promotion.psi(pd.Series(list("aab") * 100), pd.Series(list("abb") * 100)) > 0.1


def test_worse_challenger_refused_equal_one_promoted_live(tmp_path) -> None:
    # broken: a model trained on garbage could reach production, or a switch could drop CRM requests
    settings = small_settings(tmp_path, customers=2_500, seed=5, model_poll_seconds=0.3)
    prepare(settings)
    env = {"LEADSCOPE_HOME": str(tmp_path), "LEADSCOPE_MODEL_POLL_SECONDS": "0.3"}
    labels = dataset.conversion_labels(settings, horizon_days=30)
    shuffled = labels.assign(label=np.random.default_rng(1).permutation(labels["label"].to_numpy()))
    bad = propensity.fit(settings, shuffled, "propensity_v2")
    assert pipeline.log_and_register(settings, "propensity", bad)["alias"] == "challenger"

    res = CliRunner().invoke(app, ["promote", "propensity"], env=env)
    assert res.exit_code == 1 and "refused" in res.output and "FAIL  not worse than champion" in res.output
    assert tracking.alias_version(settings, "propensity") == "1"
    from serving.console import _card

    decision = _card(settings, "propensity")["decision"]  # the model card reads the recorded decision
    assert decision["version"] == "2" and decision["promoted"] is False and decision["champion"] == "1"
    assert any(c["name"] == "not worse than champion" and not c["passed"] for c in decision["checks"])

    port = free_port()
    server = start_server(port, cwd=ROOT, env=env)
    stop, seen = threading.Event(), []
    ids = pd.read_parquet(settings.raw_dir / "customers.parquet")["customer_id"].head(3).tolist()
    loop = threading.Thread(
        target=_request_loop, args=(server.url("/v1/scores"), {"customer_ids": ids}, server.headers, stop, seen)
    )
    loop.start()
    try:
        good = propensity.fit(settings, labels, "propensity_v2")
        new_version = pipeline.log_and_register(settings, "propensity", good)["version"]
        res = CliRunner().invoke(app, ["promote", "propensity"], env=env)
        assert res.exit_code == 0 and f"promoted propensity v{new_version}" in res.output, res.output
        for _ in range(100):
            if seen and seen[-1][1] == new_version:
                break
            threading.Event().wait(0.1)
    finally:
        stop.set()
        loop.join()
        server.stop()
    statuses = [s for s, _ in seen]
    print(
        f"\nrequest loop during the switch: {len(seen)} requests, statuses {sorted(set(statuses))}, "
        f"versions {versions_seen(seen)}"
    )
    versions = [v for _, v in seen]
    assert len(seen) > 20 and set(statuses) == {200}, f"{len(seen)} requests, statuses {set(statuses)}"
    assert versions[0] == "1" and versions[-1] == new_version
    assert tracking.alias_version(settings, "propensity", "previous") == "1"
    card = _card(settings, "propensity")
    assert card["decision"]["version"] == str(new_version) and card["decision"]["promoted"] is True
    assert [v["aliases"] for v in card["versions"] if v["version"] == str(new_version)] == [["champion"]]
