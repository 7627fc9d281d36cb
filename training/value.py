"""Customer value: expected net spend over the next 90 and 365 days of a paying customer.

Two methods on the same time split, both logged to MLflow (experiment `value`): a LightGBM regressor
(Tweedie loss: many zeros, a heavy tail) on the value_v1 FeatureService, and BG/NBD + Gamma-Gamma fitted on
each customer's order history up to the snapshot. The better by holdout MAE is reported as the pick.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from features import store as feature_store
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import read_table
from training import dataset, tracking
from training.clv import BGNBD, GammaGamma
from training.pipeline import time_split
from training.scorer import Encoder

SERVICE = "value_v1"
HORIZONS = (90, 365)
ValueOracle = Callable[[pd.DataFrame, int], np.ndarray]  # true expected spend per row and horizon (evaluation)
WEEK = 7.0
LGB_PARAMS = {
    "objective": "tweedie",
    "tweedie_variance_power": 1.3,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "verbosity": -1,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
}


def _orders(settings: Settings) -> pd.DataFrame:
    tx = read_table(settings.raw_dir, "transactions")
    refund = tx["is_refund"].fillna(False).astype(bool) if "is_refund" in tx else pd.Series(False, index=tx.index)
    return tx.assign(
        ts=pd.to_datetime(tx["ts"], utc=True), net=np.where(refund, -tx["amount"], tx["amount"]), order=~refund
    )


def value_labels(settings: Settings, horizon: int) -> pd.DataFrame:
    """(customer_id, event_timestamp, label = net spend in (t, t+H]) for customers who had bought by t."""
    tx = _orders(settings)
    first = tx[tx["order"]].groupby(ENTITY)["ts"].min()
    frames = []
    for s in dataset.snapshots(settings, horizon_days=horizon):
        payers = first[first <= s].index
        window = tx[(tx["ts"] > s) & (tx["ts"] <= s + pd.Timedelta(days=horizon))]
        spend = window.groupby(ENTITY)["net"].sum().reindex(payers, fill_value=0.0).clip(lower=0)
        frames.append(pd.DataFrame({ENTITY: payers.to_numpy(), TS: s, "label": spend.to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def rfm(settings: Settings, customers: pd.Series, at: pd.Timestamp) -> pd.DataFrame:
    """BG/NBD inputs in weeks: repeat orders x, first→last order t_x, first order→`at` T; mean order value."""
    tx = _orders(settings)
    tx = tx[tx["order"] & (tx["ts"] <= at) & tx[ENTITY].isin(set(customers))].sort_values("ts")
    repeat = tx[tx.duplicated(ENTITY, keep="first")]  # Gamma-Gamma models repeat orders; the first is the deal
    g = tx.groupby(ENTITY).agg(n=("ts", "size"), first=("ts", "min"), last=("ts", "max"))
    g["mean"] = repeat.groupby(ENTITY)["amount"].mean()
    g = g.reindex(customers.to_numpy())
    return pd.DataFrame(
        {
            "x": (g["n"] - 1).to_numpy(float),
            "t_x": ((g["last"] - g["first"]).dt.total_seconds() / 86400 / WEEK).to_numpy(float),
            "T": ((at - g["first"]).dt.total_seconds() / 86400 / WEEK).to_numpy(float),
            "monetary": g["mean"].to_numpy(float),
        }
    )


def _scores(y: np.ndarray, pred: np.ndarray, truth: np.ndarray | None) -> dict[str, float]:
    out = {
        "mae": float(np.mean(np.abs(y - pred))),
        "rmse": float(np.sqrt(np.mean((y - pred) ** 2))),
        "spearman_vs_actual": float(spearmanr(y, pred).statistic),
        "mean_actual": float(y.mean()),
        "mean_predicted": float(pred.mean()),
    }
    if truth is not None:
        out["spearman_vs_truth"] = float(spearmanr(truth, pred).statistic)
        out["oracle_mae"] = float(np.mean(np.abs(y - truth)))
    return out


def evaluate(settings: Settings, horizon: int, oracle: ValueOracle | None = None) -> dict[str, dict[str, float]]:
    """Both methods on the latest snapshot with a complete window; returns metrics per method."""
    labels = value_labels(settings, horizon)
    df = dataset.historical_features(feature_store.open_store(settings), labels, service=SERVICE)
    feats = feature_store.feature_names(settings, SERVICE)
    tr, va, te = time_split(df)
    enc = Encoder.fit(df[tr], feats)
    train = lgb.Dataset(enc.transform(df[tr]), label=df["label"][tr], categorical_feature=enc.categorical_indices)
    valid = lgb.Dataset(enc.transform(df[va]), label=df["label"][va], reference=train)
    booster = lgb.train(
        {**LGB_PARAMS, "seed": settings.seed},
        train,
        num_boost_round=600,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    test = df[te].reset_index(drop=True)
    y = test["label"].to_numpy()
    truth = oracle(test, horizon) if oracle else None
    at = test[TS].iloc[0]
    r = rfm(settings, test[ENTITY], at)
    bg = BGNBD(penalizer=0.001).fit(r["x"], r["t_x"], r["T"])
    gg = GammaGamma().fit(r["x"], r["monetary"])
    bg_pred = bg.expected_purchases(horizon / WEEK, r["x"], r["t_x"], r["T"]) * gg.expected_order_value(
        r["x"], r["monetary"]
    )
    scores = {
        "lightgbm": _scores(y, booster.predict(enc.transform(test), num_threads=1), truth),
        "bgnbd_gamma_gamma": _scores(y, bg_pred, truth),
    }
    lineage = {
        "feature_service": SERVICE,
        "train_snapshots": f"{df[TS][tr].min().isoformat()}..{df[TS][tr].max().isoformat()}",
        "test_snapshot": at.isoformat(),
        "train_rows": str(int(tr.sum())),
        "test_rows": str(len(test)),
        "training_frame_sha256": hashlib.sha256(
            pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()
        ).hexdigest(),
    }
    extra = {"rows": len(test), "booster": booster, "encoder": enc, "example": test[feats].head(2), "lineage": lineage}
    return scores, extra


def train(
    settings: Settings, *, progress: Callable[[str], None] = lambda _: None, oracle: ValueOracle | None = None
) -> dict[str, dict]:
    """Evaluate both methods per horizon, log one MLflow run per (method, horizon), and register the
    LightGBM pair as model `value` when it wins every horizon (BG/NBD serving would need the RFM summary
    online; until then a BG/NBD win is reported and nothing is registered)."""
    exp = tracking.experiment(settings, "value")
    results: dict[str, dict] = {}
    fitted = {}
    for h in HORIZONS:
        progress(f"{h}-day horizon")
        res, extra = evaluate(settings, h, oracle)
        fitted[h] = extra
        best = min(res, key=lambda m: res[m]["mae"])
        for method, metrics in res.items():
            with mlflow.start_run(experiment_id=exp, run_name=f"{method} {h}d"):
                params = {"method": method, "horizon_days": h, "feature_service": SERVICE}
                mlflow.log_params(params | {"seed": settings.seed, "test_rows": int(extra["rows"])})
                mlflow.log_metrics(metrics)
                mlflow.set_tags({"picked": str(method == best), **extra["lineage"]})
        results[f"{h}d"] = res | {"picked": {"method": best}}
    if all(r["picked"]["method"] == "lightgbm" for r in results.values()):
        progress("registering")
        results["registered"] = {"version": _register(settings, fitted)}
    return results


def _register(settings: Settings, fitted: dict[int, dict]) -> str:
    """Log the LightGBM pair as one pyfunc (expected spend per horizon) and register it as `value`."""
    import tempfile
    from pathlib import Path

    from mlflow.models import infer_signature

    from training.value_model import ValueModel

    model = ValueModel(fitted[HORIZONS[0]]["encoder"], {h: f["booster"] for h, f in fitted.items()})
    example = fitted[HORIZONS[0]]["example"]
    pred = model.predict(model.encoder.transform(example))
    out = pd.DataFrame({f"expected_spend_{h}d": v for h, v in pred.items()})
    with (
        mlflow.start_run(experiment_id=tracking.experiment(settings, "value"), run_name="value (registered)"),
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.log_params({"feature_service": SERVICE, "horizons": str(HORIZONS), **LGB_PARAMS})
        mlflow.set_tags(fitted[HORIZONS[0]]["lineage"])
        model.save(Path(tmp) / "value")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(tracking.__file__).with_name("pyfunc_value_entry.py")),
            artifacts={"value": str(Path(tmp) / "value")},
            signature=infer_signature(example, out),
            input_example=example,
            pip_requirements=tracking.requirements(),
            registered_model_name="value",
        )
    version = str(info.registered_model_version)
    tracking.register(settings, "value", version, SERVICE)
    return version
