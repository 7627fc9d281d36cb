"""Before a model is trained: the data sufficiency report (`--check`), the refusal below the minimums, and field
exclusion with its fairness summary, all through the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from leadscope.cli import app
from training import sufficiency, tracking


def _labels(settings, tmp_path, positives: int, rows: int = 3_000):  # noqa: ANN001, ANN202
    """A propensity export of `rows` leads with one as_of and `positives` of them converted (6 % at the default)."""
    ids = pd.read_parquet(settings.raw_dir / "customers.parquet")["customer_id"].head(rows).to_numpy()
    as_of = (pd.Timestamp(settings.world_end) - pd.Timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    label = np.zeros(rows, int)
    label[np.random.default_rng(0).choice(rows, positives, replace=False)] = 1
    path = tmp_path / f"labels_{positives}.csv"
    pd.DataFrame({"customer_id": ids, "as_of": as_of, "label": label}).to_csv(path, index=False)
    return path


def _env(settings, tmp_path) -> dict[str, str]:  # noqa: ANN001
    return {"LEADSCOPE_HOME": str(settings.home), "LEADSCOPE_MLRUNS_DIR": str(tmp_path / "mlruns")}


def test_check_prints_the_report_and_trains_nothing(prepared, tmp_path) -> None:
    settings = prepared.settings
    path = _labels(settings, tmp_path, positives=180)  # 6 % of 3,000
    args = ["train", "propensity", "--labels", str(path), "--check"]
    res = CliRunner().invoke(app, args, env=_env(settings, tmp_path))
    out = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "rows 3,000, positives 180 (6.0%), snapshots 1" in out
    assert "split by customer, stratified by label" in out and "feature coverage: " in out
    assert "enough data to train" in out
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # nothing logged, nothing registered


def test_too_few_positives_is_refused_naming_the_shortfall(prepared, tmp_path) -> None:
    # broken: any table with both outcomes trained and registered, whatever its holdout could tell
    settings = prepared.settings
    path = _labels(settings, tmp_path, positives=60)
    env = _env(settings, tmp_path)
    res = CliRunner().invoke(app, ["train", "propensity", "--labels", str(path)], env=env)
    out = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "too little data to train propensity:" in out
    assert f"positives in the test part, at least {sufficiency.MIN_TEST_EACH} needed" in out
    mlruns = settings.model_copy(update={"mlruns_dir": tmp_path / "mlruns"})
    assert not (tmp_path / "mlruns" / "mlflow.db").exists() or not tracking.has_champion(mlruns, "propensity")
    res = CliRunner().invoke(app, ["train", "propensity", "--labels", str(path), "--check"], env=env)
    assert res.exit_code == 2 and "too little data:" in res.output


def test_excluded_features_are_not_used_and_get_a_fairness_summary(prepared, tmp_path) -> None:
    settings = prepared.settings
    env = _env(settings, tmp_path)
    res = CliRunner().invoke(
        app, ["train", "churn", "--exclude-features", "country", "--fairness-by", "tenure_days"], env=env
    )
    out = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "excluded features: country" in out and "fairness by country (mean score, calibration gap):" in out
    local = settings.model_copy(update={"mlruns_dir": tmp_path / "mlruns"})
    champion = tracking.load_champion(local, "churn")
    assert "country" not in champion.model.encoder.features and "tenure_days" in champion.model.encoder.features
    client = MlflowClient()
    run_id = client.get_model_version("churn", champion.version).run_id
    assert client.get_run(run_id).data.params["excluded_features"] == "country"
    names = {a.path for a in client.list_artifacts(run_id, "fairness")}
    assert names == {"fairness/country.csv", "fairness/tenure_days.csv"}
    table = pd.read_csv(client.download_artifacts(run_id, "fairness/country.csv", str(tmp_path)))
    assert {"group", "rows", "mean_score", "observed_rate", "calibration_gap", "roc_auc"} <= set(table.columns)
    assert table["rows"].sum() > 0 and table["mean_score"].between(0, 1).all()
    res = CliRunner().invoke(app, ["train", "churn", "--exclude-features", "shoe_size"], env=env)
    assert res.exit_code == 2 and "--exclude-features: shoe_size is not a feature of churn_v1" in res.output


def test_a_propensity_export_with_6_percent_positives_trains_and_scores(prepared, tmp_path) -> None:
    # the generator's real conversions at two export dates, thinned to 6 % positives as a CRM export has them
    settings = prepared.settings
    won = pd.read_parquet(settings.raw_dir / "stages.parquet").query("stage == 'won'").groupby("customer_id")["ts"]
    first_won = won.min()
    customers = pd.read_parquet(settings.raw_dir / "customers.parquet")
    parts = []
    for days in (200, 290):
        as_of = pd.Timestamp(settings.world_end) - pd.Timedelta(days=days)
        leads = customers[pd.to_datetime(customers["created_at"], utc=True) < as_of]["customer_id"]
        leads = leads[~leads.map(first_won).le(as_of).fillna(False).astype(bool)]
        label = leads.map(first_won).between(as_of, as_of + pd.Timedelta(days=180)).astype(int)
        parts.append(pd.DataFrame({"customer_id": leads, "as_of": as_of.isoformat(), "label": label}))
    frame = pd.concat(parts, ignore_index=True)
    negatives = frame.index[frame["label"] == 0]
    positives = frame.index[frame["label"] == 1][: int(0.06 / 0.94 * len(negatives))]
    frame = frame.loc[np.r_[negatives, positives]].sample(frac=1.0, random_state=0)
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    env = _env(settings, tmp_path)
    res = CliRunner().invoke(app, ["train", "propensity", "--labels", str(path)], env=env)
    out = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    share = float(out.split("positives ")[1].split("(")[1].split("%")[0])
    assert 5.5 <= share <= 6.5, out
    assert float(out.split("holdout ROC-AUC ")[1].split(",")[0]) > 0.6, out  # 26 test positives: SE ≈ 0.05
    ids = tmp_path / "ids.csv"
    frame[["customer_id"]].head(100).to_csv(ids, index=False)
    scored = tmp_path / "scored.csv"
    res = CliRunner().invoke(app, ["score", "--input", str(ids), "--out", str(scored)], env=env)
    assert res.exit_code == 0 and pd.read_csv(scored)["propensity_probability"].between(0, 1).all(), res.output
