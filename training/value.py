"""Customer value: expected net spend (and repeat orders) of a paying customer over horizons that fit the history.

Two methods on the same split per horizon, both logged to MLflow (experiment `value`): a LightGBM regressor
(Tweedie loss: many zeros, a heavy tail) on the value_v1 FeatureService, and BG/NBD + Gamma-Gamma on each
customer's order history read from the same features (training/value_model.py: rfm). The better by holdout MAE
serves that horizon. The split is out of time when the history allows it: the test is the latest snapshot with a
complete window and training uses only snapshots whose outcome window ends before that one opens; otherwise
customers are split (grouped, none on both sides) and the run says it is not out of time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from features import store as feature_store
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import read_feature_meta, read_table
from training import dataset, tracking
from training.labels import own_value_labels
from training.scorer import Encoder
from training.value_model import BGNBD_GG, LIGHTGBM, RFM_FEATURES, Clv, rfm

SERVICE = "value_v1"
HORIZONS = (90, 365)  # the default horizons, each kept when the history has a complete window for it
SHORT_HORIZONS = (60, 30)  # tried, longest first, when the history is too short for any default one
ValueOracle = Callable[[pd.DataFrame, int], np.ndarray]  # true expected spend per row and horizon (evaluation)
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


def _fits(settings: Settings, horizon: int) -> bool:
    """A horizon can be trained and tested when two snapshots have a complete outcome window."""
    return len(dataset.snapshots(settings, horizon_days=horizon)) >= 2


def horizons(settings: Settings, requested: tuple[int, ...] = ()) -> tuple[int, ...]:
    """The requested horizons (each must fit the history), or the defaults that fit, or the longest short one."""
    meta = read_feature_meta(settings.feature_dir)
    meta_days = lambda: int((meta.end - meta.start).days)  # noqa: E731
    if requested:
        if bad := [h for h in requested if h < 1 or not _fits(settings, h)]:
            raise ValueError(
                f"--horizons: {', '.join(f'{h} d' for h in bad)} needs a longer history than the {meta_days()} days "
                f"the features cover ({dataset.WARMUP_DAYS} days of warm-up, then two snapshots with a complete "
                "window)"
            )
        return tuple(sorted(set(requested)))
    found = tuple(h for h in HORIZONS if _fits(settings, h))
    if not found:
        found = next(((h,) for h in SHORT_HORIZONS if _fits(settings, h)), ())
    if not found:
        raise ValueError(
            f"the history ({meta_days()} days) is too short for any value horizon: it needs "
            f"{dataset.WARMUP_DAYS} days of warm-up and then at least two snapshots with a complete "
            f"{SHORT_HORIZONS[-1]}-day window"
        )
    return found


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


def value_split(df: pd.DataFrame, horizon: int) -> tuple[tuple[pd.Series, pd.Series, pd.Series], str]:
    """(train, valid, test) masks and how: "time" when some snapshot's outcome window ends before the latest one
    opens (those snapshots train, 1/7 of their customers validate, the latest snapshot tests), else "customer":
    customers split 5/1/1 (grouped: no customer on two sides), the test customers at every snapshot (their rows
    are near-copies of each other, but no training label is theirs)."""
    latest = df[TS].max()
    fold = pd.Series(pd.util.hash_pandas_object(df[ENTITY], index=False).to_numpy() % 7, index=df.index)
    before = df[TS] + pd.Timedelta(days=horizon) <= latest  # outcome window closed before the test window opens
    if before.any() and (fold[before] == 0).any() and (fold[before] != 0).any():
        return (before & (fold != 0), before & (fold == 0), df[TS] == latest), "time"
    return (fold >= 2, fold == 1, fold == 0), "customer"


def evaluate(
    settings: Settings,
    horizon: int,
    oracle: ValueOracle | None = None,
    encoder: Encoder | None = None,
    labels: pd.DataFrame | None = None,
) -> dict[str, dict[str, float]]:
    """Both methods on the holdout of `value_split`; returns metrics per method and what registering needs.
    `labels`: a company's own spend outcomes over `horizon` (default: computed from the transactions)."""
    labels = value_labels(settings, horizon) if labels is None else labels
    df = dataset.historical_features(feature_store.open_store(settings), labels, service=SERVICE)
    feats = feature_store.feature_names(settings, SERVICE)
    (tr, va, te), how = value_split(df, horizon)
    enc = encoder or Encoder.fit(df[tr], feats)
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
    at = test[TS].max()
    r = rfm({f: test[f].to_numpy(float) for f in RFM_FEATURES})  # the same inputs serving reads online
    clv = Clv.fit(r)  # on each customer's own past up to the snapshot: no outcome is seen
    scores = {
        LIGHTGBM: _scores(y, booster.predict(enc.transform(test), num_threads=1), truth),
        BGNBD_GG: _scores(y, clv.spend(r, horizon), truth),
    }
    lineage = {
        "feature_service": SERVICE,
        "split": how,
        "train_snapshots": f"{df[TS][tr].min().isoformat()}..{df[TS][tr].max().isoformat()}",
        "test_snapshot": at.isoformat() if how == "time" else f"{test[TS].min().isoformat()}..{at.isoformat()}",
        "train_rows": str(int(tr.sum())),
        "test_rows": str(len(test)),
        "training_frame_sha256": hashlib.sha256(
            pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()
        ).hexdigest(),
    }
    extra = {
        "rows": len(test),
        "booster": booster,
        "encoder": enc,
        "clv": clv,
        "split": how,
        "example": test[feats].head(2),
        "lineage": lineage,
    }
    return scores, extra


def train(
    settings: Settings,
    *,
    progress: Callable[[str], None] = lambda _: None,
    oracle: ValueOracle | None = None,
    requested: tuple[int, ...] = (),
    labels_path: Path | None = None,
) -> dict[str, dict]:
    """Evaluate both methods per horizon (`horizons`), log one MLflow run per (method, horizon), and register
    model `value` serving each horizon with the method that won it (the model card's `methods` tag says which).
    `labels_path`: the company's own spend outcomes, over the one horizon `requested` names."""
    own = None
    if labels_path is not None:
        if len(requested) != 1:
            raise ValueError("--labels needs --horizons with one number: the days of spend each label covers")
        own = own_value_labels(labels_path, settings)
        oracle = None
    exp = tracking.experiment(settings, "value")
    results: dict[str, dict] = {}
    fitted: dict[int, dict] = {}
    for h in requested if own is not None else horizons(settings, requested):
        progress(f"{h}-day horizon")
        first = next(iter(fitted.values()), None)
        res, extra = evaluate(settings, h, oracle, encoder=first["encoder"] if first else None, labels=own)
        fitted[h] = extra
        best = min(res, key=lambda m: res[m]["mae"])
        for method, metrics in res.items():
            with mlflow.start_run(experiment_id=exp, run_name=f"{method} {h}d"):
                params = {"method": method, "horizon_days": h, "feature_service": SERVICE}
                mlflow.log_params(params | {"seed": settings.seed, "test_rows": int(extra["rows"])})
                mlflow.log_metrics(metrics)
                mlflow.set_tags({"picked": str(method == best), **extra["lineage"]})
        results[f"{h}d"] = res | {"picked": {"method": best, "split": extra["split"]}}
    progress("registering")
    methods = {int(k.removesuffix("d")): r["picked"]["method"] for k, r in results.items()}
    results["registered"] = {"version": _register(settings, fitted, methods), "methods": methods}
    return results


def _register(settings: Settings, fitted: dict[int, dict], methods: dict[int, str] | None = None) -> str:
    """Log the per-horizon models as one pyfunc (expected spend and repeat orders per horizon) and register it as
    `value`; BG/NBD's parameters are the shortest horizon's (fitted on the most recent snapshot's histories)."""
    import tempfile
    from pathlib import Path

    from mlflow.models import infer_signature

    from training.value_model import ValueModel

    hs = sorted(fitted)
    methods = methods or dict.fromkeys(hs, LIGHTGBM)
    model = ValueModel(
        fitted[hs[0]]["encoder"], {h: f["booster"] for h, f in fitted.items()}, methods, fitted[hs[0]]["clv"]
    )
    example = fitted[hs[0]]["example"]
    with (
        mlflow.start_run(experiment_id=tracking.experiment(settings, "value"), run_name="value (registered)"),
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.log_params({"feature_service": SERVICE, "horizons": str(tuple(hs)), **LGB_PARAMS})
        mlflow.set_tags(fitted[hs[0]]["lineage"] | {"methods": ", ".join(f"{h}d: {m}" for h, m in methods.items())})
        model.save(Path(tmp) / "value")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(tracking.__file__).with_name("pyfunc_value_entry.py")),
            artifacts={"value": str(Path(tmp) / "value")},
            signature=infer_signature(example, model.frame(model.encoder.transform(example))),
            input_example=example,
            pip_requirements=tracking.requirements(),
            registered_model_name="value",
        )
    version = str(info.registered_model_version)
    tracking.register(settings, "value", version, SERVICE)
    return version
