"""Monitoring: feature and score drift (PSI) between what a champion trained on and the newest data, and
realised vs predicted rates for snapshots whose outcome window has closed."""

from __future__ import annotations

import mlflow
import pandas as pd

from features import store as feature_store
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import read_feature_meta, read_table
from training import dataset, tracking
from training.promotion import _labels, psi


def population_now(settings: Settings, name: str) -> pd.DataFrame:
    """Entity rows at the newest feature cut: open leads (propensity) or paying customers (churn)."""
    end = read_feature_meta(settings.feature_dir).end
    customers = read_table(settings.raw_dir, "customers")
    stages = read_table(settings.raw_dir, "stages")
    won = stages[stages["stage"] == "won"].assign(ts=lambda d: pd.to_datetime(d["ts"], utc=True))
    won_by_end = set(won.loc[won["ts"] <= end, ENTITY])
    created = pd.to_datetime(customers["created_at"], utc=True) <= end
    payer = customers[ENTITY].isin(won_by_end)
    keep = created & (payer if name == "churn" else ~payer)
    return pd.DataFrame({ENTITY: customers.loc[keep, ENTITY].to_numpy(), TS: end})


def monitor(settings: Settings, name: str, *, last_snapshots: int = 4) -> dict[str, pd.DataFrame]:
    """PSI per feature and of the score (training snapshots vs now), and realised vs predicted per snapshot."""
    champ = tracking.load_champion(settings, name)
    store = feature_store.open_store(settings)
    labels = _labels(settings, name)
    snaps = sorted(labels[TS].unique())
    train_rows = labels[labels[TS].isin(snaps[-2 - last_snapshots : -2])]  # what the champion fitted on last
    train_rows = train_rows.sample(min(20_000, len(train_rows)), random_state=0)
    ref = dataset.historical_features(store, train_rows, service=champ.feature_service)
    now = dataset.historical_features(store, population_now(settings, name), service=champ.feature_service)
    score = {k: champ.model.probability(champ.model.encoder.transform(df)) for k, df in (("ref", ref), ("now", now))}
    drift = pd.DataFrame(
        [("(score)", psi(pd.Series(score["ref"]), pd.Series(score["now"])))]
        + [(f, psi(ref[f], now[f])) for f in champ.model.encoder.features],
        columns=["feature", "psi"],
    ).sort_values("psi", ascending=False, ignore_index=True)
    recent = labels[labels[TS].isin(snaps[-last_snapshots:])]
    scored = dataset.historical_features(store, recent, service=champ.feature_service)
    scored["predicted"] = champ.model.probability(champ.model.encoder.transform(scored))
    calib = (
        scored.groupby(TS)
        .agg(rows=("label", "size"), realised=("label", "mean"), predicted=("predicted", "mean"))
        .reset_index()
    )
    calib["ratio"] = calib["realised"] / calib["predicted"]
    with mlflow.start_run(
        experiment_id=tracking.experiment(settings, "monitoring"), run_name=f"{name} v{champ.version}"
    ):
        mlflow.set_tags({"model": name, "version": champ.version, "feature_service": champ.feature_service})
        mlflow.log_metrics({f"psi.{r.feature.strip('()')}": r.psi for r in drift.itertuples()})
        mlflow.log_metrics(
            {"realised_rate": float(calib["realised"].mean()), "predicted_rate": float(calib["predicted"].mean())}
        )
        mlflow.log_text(drift.to_csv(index=False), "drift.csv")
        mlflow.log_text(calib.to_csv(index=False), "realised_vs_predicted.csv")
    return {"drift": drift, "calibration": calib, "rows_now": pd.DataFrame({"rows": [len(now)]})}


def summary(result: dict[str, pd.DataFrame], *, max_psi: float = 0.25) -> list[str]:
    drift, calib = result["drift"], result["calibration"]
    lines = [
        f"{r.feature:<32} PSI {r.psi:6.3f}" + ("  DRIFT" if r.psi > max_psi else "")
        for r in drift.head(10).itertuples()
    ]
    lines += [
        f"{pd.Timestamp(r.event_timestamp).date()}  rows {r.rows:>6}  realised {r.realised:.4f}  "
        f"predicted {r.predicted:.4f}  ratio {r.ratio:.2f}"
        for r in calib.itertuples()
    ]
    return lines
