"""Lead propensity: P(won within N days of a snapshot) from the propensity_v1 FeatureService."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from features import store as feature_store
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from training import dataset, tracking
from training.classifier import DEFAULT_PARAMS, CalibratedLGBMClassifier
from training.evaluation import binary_metrics

MODEL_NAME = "propensity"
SERVICE = "propensity_v1"
# +1: the score may only rise with the feature; -1: only fall. Buying signals, not correlations.
MONOTONE = {"pricing_view_30d": 1, "pricing_view_90d": 1, "pricing_view_total": 1, "form_submit_total": 1,
            "inbound_call_total": 1, "days_since_pricing_view": -1}


def time_split(df: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Masks (train, valid, test): the latest snapshot is the test, the one before validates."""
    snaps = np.sort(df[TS].unique())
    if len(snaps) < 3:
        raise ValueError(f"need at least 3 snapshots for a time split, have {len(snaps)}")
    test, valid = df[TS] == snaps[-1], df[TS] == snaps[-2]
    return ~(test | valid), valid, test


def oracle_probability(settings: Settings, rows: pd.DataFrame, horizon_days: int) -> np.ndarray | None:
    """True probabilities when the data came from our generator (its truth folder sits beside it)."""
    truth_dir = settings.raw_dir / "truth"
    if not (truth_dir / "customers.parquet").exists():
        return None
    from leadscope.synth.truth import load_world, true_conversion_probability

    truth = pd.read_parquet(truth_dir / "customers.parquet")
    return true_conversion_probability(truth, load_world(truth_dir), rows[ENTITY], rows[TS], horizon_days)


def train(settings: Settings, *, progress: Callable[[str], None] = lambda _: None,
          set_champion: bool = True) -> dict[str, float | str]:
    """Build the PIT training set, fit, evaluate on the latest snapshot, log and register in MLflow."""
    horizon = settings.propensity_horizon_days
    progress("labels and point-in-time features")
    labels = dataset.conversion_labels(settings, horizon_days=horizon)
    store = feature_store.open_store(settings)
    df = dataset.historical_features(store, labels, service=SERVICE)
    features = feature_store.feature_names(settings, SERVICE)
    tr, va, te = time_split(df)
    progress("fitting LightGBM")
    model = CalibratedLGBMClassifier(seed=settings.seed, monotone=MONOTONE).fit(
        df[tr], df["label"][tr].to_numpy(), X_valid=df[va], y_valid=df["label"][va].to_numpy(), features=features)
    p = model.predict_proba(df[te])[:, 1]
    metrics = binary_metrics(df["label"][te].to_numpy(), p, oracle_probability(settings, df[te], horizon))
    progress("logging to MLflow")
    exp = tracking.experiment(settings, MODEL_NAME)
    with mlflow.start_run(experiment_id=exp) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({**{k: v for k, v in DEFAULT_PARAMS.items()}, "best_iteration": model.best_iteration_,
                           "horizon_days": horizon, "seed": settings.seed, "monotone": str(MONOTONE), "feature_service": SERVICE,
                           "n_features": len(features)})
        mlflow.log_metrics(metrics)
        mlflow.set_tags(_lineage(df, tr, va, te))
        path = Path(tmp) / "scorer"
        model.scorer_.save(path)
        example = df[te][features].head(2)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(Path(tracking.__file__).with_name("pyfunc_entry.py")), artifacts={"scorer": str(path)},
            signature=infer_signature(example, p[:2]), input_example=example,
            pip_requirements=tracking.requirements(), registered_model_name=MODEL_NAME)
    client = tracking.configure(settings)
    version = str(info.registered_model_version)
    client.set_model_version_tag(MODEL_NAME, version, "feature_service", SERVICE)
    if set_champion:
        client.set_registered_model_alias(MODEL_NAME, tracking.CHAMPION, version)
    return {**metrics, "run_id": run.info.run_id, "version": version}


def _lineage(df: pd.DataFrame, tr: pd.Series, va: pd.Series, te: pd.Series) -> dict[str, str]:
    """What the model was trained on: snapshots, row counts, positive rate, a hash of the frame."""
    frame_hash = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()
    span = lambda m: f"{df[TS][m].min().isoformat()}..{df[TS][m].max().isoformat()}"  # noqa: E731
    return {"feature_service": SERVICE, "train_snapshots": span(tr), "valid_snapshot": span(va),
            "test_snapshot": span(te), "train_rows": str(int(tr.sum())), "test_rows": str(int(te.sum())),
            "train_positive_rate": f"{df['label'][tr].mean():.5f}", "training_frame_sha256": frame_hash}
