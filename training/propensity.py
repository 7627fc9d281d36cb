"""Lead propensity: P(won within N days of a snapshot), trained from a named FeatureService."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
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
WITH_GRAPH, WITHOUT_GRAPH = "propensity_v2", "propensity_v1"
# +1: the score may only rise with the feature; -1: only fall. Buying signals, not correlations.
MONOTONE = {
    "pricing_view_30d": 1,
    "pricing_view_90d": 1,
    "pricing_view_total": 1,
    "form_submit_total": 1,
    "inbound_call_total": 1,
    "days_since_pricing_view": -1,
}


@dataclass
class Fitted:
    service: str
    model: CalibratedLGBMClassifier
    frame: pd.DataFrame
    masks: tuple[pd.Series, pd.Series, pd.Series]
    metrics: dict[str, float]


def time_split(df: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Masks (train, valid, test): the latest snapshot is the test, the one before validates. Labels with
    many distinct as_of times (a company's own) split by time quantile instead: last 15 % test, 15 % before valid."""
    snaps = np.sort(df[TS].unique())
    if len(snaps) < 3:
        raise ValueError(f"need at least 3 distinct snapshot times for a time split, have {len(snaps)}")
    if len(snaps) <= 60:
        test, valid = df[TS] == snaps[-1], df[TS] == snaps[-2]
    else:
        q70, q85 = df[TS].quantile(0.70), df[TS].quantile(0.85)
        test, valid = df[TS] > q85, (df[TS] > q70) & (df[TS] <= q85)
    return ~(test | valid), valid, test


def own_labels(path: Path) -> pd.DataFrame:
    """A company's outcome table (customer_id, as_of, label) as entity rows; invalid rows refuse the file."""
    from features import ingest

    raw = ingest.read(path, "labels")
    rows, rejects = ingest.validate("labels", raw, file=path.name, known_customers=set(raw["customer_id"].astype(str)))
    if not rejects.empty:
        first = rejects.iloc[0]
        raise ValueError(
            f"{path.name}: {len(rejects)} invalid label rows, e.g. row {first['row']} "
            f"column {first['column']}: {first['reason']}"
        )
    return pd.DataFrame(
        {ENTITY: rows["customer_id"].astype(str), TS: rows["as_of"], "label": rows["label"].astype(int)}
    )


def oracle_probability(settings: Settings, rows: pd.DataFrame, horizon_days: int) -> np.ndarray | None:
    """True probabilities when the data came from our generator (its truth folder sits beside it)."""
    truth_dir = settings.raw_dir / "truth"
    if not (truth_dir / "customers.parquet").exists():
        return None
    from leadscope.synth.truth import load_world, true_conversion_probability

    truth = pd.read_parquet(truth_dir / "customers.parquet")
    return true_conversion_probability(truth, load_world(truth_dir), rows[ENTITY], rows[TS], horizon_days)


def fit(settings: Settings, labels: pd.DataFrame, service: str, *, with_oracle: bool = True) -> Fitted:
    """PIT features of `service` for the labelled rows, time split, fit, holdout metrics (vs the oracle)."""
    df = dataset.historical_features(feature_store.open_store(settings), labels, service=service)
    features = feature_store.feature_names(settings, service)
    tr, va, te = time_split(df)
    model = CalibratedLGBMClassifier(seed=settings.seed, monotone=MONOTONE).fit(
        df[tr], df["label"][tr].to_numpy(), X_valid=df[va], y_valid=df["label"][va].to_numpy(), features=features
    )
    p = model.predict_proba(df[te])[:, 1]
    oracle = oracle_probability(settings, df[te], settings.propensity_horizon_days) if with_oracle else None
    return Fitted(service, model, df, (tr, va, te), binary_metrics(df["label"][te].to_numpy(), p, oracle))


def train(
    settings: Settings,
    *,
    progress: Callable[[str], None] = lambda _: None,
    set_champion: bool = True,
    service: str | None = None,
    labels_path: Path | None = None,
) -> dict[str, float | str]:
    """Fit on the richest available service, log and register it; when that is the graph service, also
    fit and log the same split without graph features, so the runs show what the graph adds."""
    service = service or (WITH_GRAPH if feature_store.has_service(settings, WITH_GRAPH) else WITHOUT_GRAPH)
    progress("labels")
    if labels_path:
        labels = own_labels(labels_path)
    else:
        labels = dataset.conversion_labels(settings, horizon_days=settings.propensity_horizon_days)
    progress(f"point-in-time features and fit ({service})")
    main = fit(settings, labels, service, with_oracle=labels_path is None)
    exp = tracking.experiment(settings, MODEL_NAME)
    extra: dict[str, float] = {}
    if service == WITH_GRAPH:
        progress(f"comparison fit ({WITHOUT_GRAPH})")
        base = fit(settings, labels, WITHOUT_GRAPH, with_oracle=labels_path is None)
        with mlflow.start_run(experiment_id=exp, run_name=f"{WITHOUT_GRAPH} (comparison)"):
            _log_common(settings, base, role="comparison")
        extra = {
            "roc_auc_without_graph": base.metrics["roc_auc"],
            "graph_roc_auc_gain": main.metrics["roc_auc"] - base.metrics["roc_auc"],
        }
    progress("logging to MLflow")
    with mlflow.start_run(experiment_id=exp, run_name=service) as run, tempfile.TemporaryDirectory() as tmp:
        _log_common(settings, main, role="candidate")
        mlflow.log_metrics(extra)
        path = Path(tmp) / "scorer"
        main.model.scorer_.save(path)
        te = main.masks[2]
        features = main.model.scorer_.encoder.features
        example = main.frame[te][features].head(2)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(tracking.__file__).with_name("pyfunc_entry.py")),
            artifacts={"scorer": str(path)},
            signature=infer_signature(example, main.model.predict_proba(example)[:, 1]),
            input_example=example,
            pip_requirements=tracking.requirements(),
            registered_model_name=MODEL_NAME,
        )
    client = tracking.configure(settings)
    version = str(info.registered_model_version)
    client.set_model_version_tag(MODEL_NAME, version, "feature_service", service)
    if set_champion:
        client.set_registered_model_alias(MODEL_NAME, tracking.CHAMPION, version)
    return {**main.metrics, **extra, "run_id": run.info.run_id, "version": version, "feature_service": service}


def _log_common(settings: Settings, f: Fitted, *, role: str) -> None:
    mlflow.log_params(
        {
            **DEFAULT_PARAMS,
            "best_iteration": f.model.best_iteration_,
            "seed": settings.seed,
            "horizon_days": settings.propensity_horizon_days,
            "feature_service": f.service,
            "n_features": len(f.model.scorer_.encoder.features),
            "monotone": str(MONOTONE),
        }
    )
    mlflow.log_metrics(f.metrics)
    mlflow.set_tags({**_lineage(f), "role": role})


def _lineage(f: Fitted) -> dict[str, str]:
    """What the model was trained on: snapshots, row counts, positive rate, a hash of the frame."""
    df, (tr, va, te) = f.frame, f.masks
    frame_hash = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()
    span = lambda m: f"{df[TS][m].min().isoformat()}..{df[TS][m].max().isoformat()}"  # noqa: E731
    return {
        "feature_service": f.service,
        "train_snapshots": span(tr),
        "valid_snapshot": span(va),
        "test_snapshot": span(te),
        "train_rows": str(int(tr.sum())),
        "test_rows": str(int(te.sum())),
        "train_positive_rate": f"{df['label'][tr].mean():.5f}",
        "training_frame_sha256": frame_hash,
    }
