"""The pipeline on Ray (LEADSCOPE_ENGINE=ray) against the local engine on the same company: the feature build
(Ray Data over customer partitions) column by column, materialisation (Feast's Ray compute engine), training (Ray
Train's LightGBM) and batch scoring (Ray Data batch inference). A local Ray of 2 CPUs and a small object store;
where Ray cannot start the tests skip with the reason, except under CI, where they must run."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscope.settings import Settings
from tests.conftest import prepare, small_settings

VIEWS = (
    "customer_profile",
    "customer_transactions",
    "customer_transactions_detail",
    "customer_engagement",
    "customer_engagement_detail",
    "customer_graph",
)
RAY = {"engine": "ray", "ray_cpus": 2, "ray_memory_mb": 256, "ray_partitions": 3, "ray_workers": 2}


@pytest.fixture(scope="module")
def ray_session():
    from leadscope.engine import EngineUnavailable, ensure_ray

    try:
        ray = ensure_ray(Settings(**RAY))
    except EngineUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Ray tests, and Ray did not start: {e}")
        pytest.skip(f"Ray cannot start on this machine: {e}")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def companies(ray_session, tmp_path_factory) -> tuple[Settings, Settings, dict]:
    """One generated company built twice from the same raw tables: locally and on Ray."""
    from features.build import build

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)  # current data: see below
    local = small_settings(tmp_path_factory.mktemp("local"), customers=2_500, seed=11, world_end=today)
    prepare(local, train=False)
    on_ray = small_settings(tmp_path_factory.mktemp("ray"), customers=2_500, seed=11, world_end=today, **RAY)
    shutil.copytree(local.raw_dir, on_ray.raw_dir)
    report = build(on_ray)
    return local, on_ray, {"rows": report.rows, "skipped": report.skipped}


def _sorted(path) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values(["customer_id", "event_timestamp"]).reset_index(drop=True)


def test_the_feature_build_on_ray_writes_the_local_features_column_by_column(companies) -> None:
    # broken: a partition loses or repeats customers, the relative features rank against one partition instead of
    # everyone alive at the cut, or the Ray batches come back with other types
    local, on_ray, report = companies
    assert report["skipped"] == {}
    for view in VIEWS:
        a, b = _sorted(local.feature_dir / f"{view}.parquet"), _sorted(on_ray.feature_dir / f"{view}.parquet")
        assert len(a) == report["rows"][view] > 2_500, view
        assert list(a.columns) == list(b.columns), view
        for col in a.columns:
            pd.testing.assert_series_equal(a[col], b[col], check_exact=True, obj=f"{view}.{col}")
    for name in ("reference.json", "schema.json", "meta.json"):
        assert json.loads((local.feature_dir / name).read_text()) == json.loads((on_ray.feature_dir / name).read_text())
    assert not on_ray.feature_dir.with_name("features.partitions").exists()  # the partitioned copy is gone


def test_the_relative_features_rank_against_everyone_alive_at_the_cut(companies) -> None:
    # broken: the RFM quintiles are left NaN by the partition pass, or computed per partition
    _, on_ray, _ = companies
    keys = ["customer_id", "event_timestamp"]
    tx = pd.read_parquet(on_ray.feature_dir / "customer_transactions.parquet").merge(
        pd.read_parquet(on_ray.feature_dir / "customer_transactions_detail.parquet"), on=keys
    )
    newest = tx[tx["event_timestamp"] == tx["event_timestamp"].max()]
    buyers = newest[newest["tx_count_total"] > 0]
    assert newest["tx_rfm_frequency_score"].notna().all()
    shares = buyers["tx_rfm_monetary_score"].value_counts(normalize=True).sort_index()
    assert list(shares.index) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert shares.between(0.12, 0.28).all(), shares  # quintiles of the whole population, not of a third of it


def test_materialisation_on_ray_loads_the_same_online_rows(companies) -> None:
    from features.store import open_store

    local, on_ray, _ = companies
    ids = pd.read_parquet(local.raw_dir / "customers.parquet", columns=["customer_id"])["customer_id"].tolist()[::9]
    frames = []
    for s in (local, on_ray):
        fs = open_store(s)
        assert type(fs._get_provider().batch_engine).__name__ == (
            "RayComputeEngine" if s.engine == "ray" else "LocalComputeEngine"
        )
        rows = [{"customer_id": i} for i in ids]
        frames.append(fs.get_online_features(features=fs.get_feature_service("customer_360"), entity_rows=rows).to_df())
    a, b = (f.sort_values("customer_id").reset_index(drop=True) for f in frames)
    assert a["tx_count_total"].notna().mean() > 0.9
    pd.testing.assert_frame_equal(a, b[a.columns], check_dtype=False)


def test_a_history_older_than_the_ttl_materialises_with_the_local_engine(prepared) -> None:
    # broken: Feast's Ray engine would keep only rows newer than now − TTL: no features but the profiles online
    from features.store import open_store, ray_materializes

    stale = prepared.settings.model_copy(update={"engine": "ray"})
    assert not ray_materializes(stale)
    assert type(open_store(stale)._get_provider().batch_engine).__name__ == "LocalComputeEngine"
    assert type(open_store(prepared.settings)._get_provider().batch_engine).__name__ == "LocalComputeEngine"


@pytest.fixture(scope="module")
def trained(companies) -> dict[str, dict]:
    from training import propensity

    local, on_ray, _ = companies
    return {s.engine: propensity.train(s) for s in (local, on_ray)}


def test_training_on_ray_reaches_the_local_holdout_auc(trained, companies) -> None:
    # broken: the workers train on the same rows (no split) or on one shard each (no network), or early stopping
    # disagrees between workers (a hang), or the booster that comes back is not the one at the best round
    from training.tracking import load_champion

    _, on_ray, _ = companies
    local_auc, ray_auc = trained["local"]["roc_auc"], trained["ray"]["roc_auc"]
    assert local_auc > 0.7
    # a holdout of ~50 positives: measured on 3,000 customers, four seeds each, the holdout AUC's spread is 0.007
    # (local) and 0.005 (Ray), and their means 0.004 apart; ±0.005 holds at benchmark size (benchmarks/scale.py)
    assert abs(ray_auc - local_auc) <= 0.035, (local_auc, ray_auc)
    assert trained["ray"]["engine"] == "ray" and trained["local"]["engine"] == "local"
    champion = load_champion(on_ray, "propensity")
    assert champion.model.booster.num_trees() > 5


def test_batch_scoring_on_ray_gives_the_local_batch_scores(trained, companies, tmp_path) -> None:
    # broken: an actor scores with another model or another window, or the output order is lost
    from leadscope.cli import app as cli

    _, on_ray, _ = companies
    ids = pd.read_parquet(on_ray.raw_dir / "customers.parquet", columns=["customer_id"])["customer_id"]
    src = tmp_path / "ids.csv"
    pd.DataFrame({"customer_id": [*ids.tolist(), "NOT-A-CUSTOMER"]}).to_csv(src, index=False)
    out = {}
    for engine in ("local", "ray"):
        path = tmp_path / f"{engine}.parquet"
        env = {"LEADSCOPE_HOME": str(on_ray.home), "LEADSCOPE_ENGINE": engine, "LEADSCOPE_CUSTOMERS": "2500"}
        args = ["score", "--input", str(src), "--models", "propensity", "--out", str(path), "--chunk", "700"]
        res = CliRunner().invoke(cli, args, env=env)
        assert res.exit_code == 0, res.output
        out[engine] = pd.read_parquet(path)
    a, b = out["local"], out["ray"]
    assert a["customer_id"].tolist() == b["customer_id"].tolist() == [*ids.tolist(), "NOT-A-CUSTOMER"]
    assert b["error"].notna().sum() == 1
    assert np.array_equal(
        a["propensity_probability"].to_numpy(), b["propensity_probability"].to_numpy(), equal_nan=True
    )
    pd.testing.assert_frame_equal(a, b)
