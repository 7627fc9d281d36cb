"""One training pipeline for every binary model: PIT features → time split → fit → metrics vs oracle →
MLflow run (params, metrics, lineage, model with signature) → registry version (and alias)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from features import store as feature_store
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from training import dataset, fairness, sufficiency, tracking
from training.classifier import DEFAULT_PARAMS, CalibratedLGBMClassifier
from training.evaluation import binary_metrics

Oracle = Callable[[pd.DataFrame], np.ndarray | None]


@dataclass
class Fitted:
    service: str
    model: CalibratedLGBMClassifier
    frame: pd.DataFrame
    masks: tuple[pd.Series, pd.Series, pd.Series]
    metrics: dict[str, float]
    params: dict[str, object] = field(default_factory=dict)
    report: sufficiency.Report | None = None
    fairness: dict[str, pd.DataFrame] = field(default_factory=dict)  # attribute → per-group holdout summary


def time_split(df: pd.DataFrame, horizon_days: int | None = None) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Masks (train, valid, test): the latest snapshot is the test, the one before validates. Labels with
    many distinct as_of times (a company's own) split by time quantile: last 15 % test, 15 % before valid.

    With the labels' outcome window known (`horizon_days`: the built-in definitions), no outcome window of a
    training or validation row reaches into the test window: the holdout is out of time, not a near-copy of the
    last training labels. (Validation, used for early stopping and calibration, is the latest such snapshot.)"""
    snaps = np.sort(df[TS].unique())
    if len(snaps) < 3:
        raise ValueError(f"need at least 3 distinct snapshot times for a time split, have {len(snaps)}")
    if len(snaps) <= 60:
        test, valid = df[TS] == snaps[-1], df[TS] == snaps[-2]
    else:
        q70, q85 = df[TS].quantile(0.70), df[TS].quantile(0.85)
        test, valid = df[TS] > q85, (df[TS] > q70) & (df[TS] <= q85)
    if horizon_days:
        gap = pd.Timedelta(days=horizon_days)
        times = pd.DatetimeIndex(df[TS].unique()).sort_values()
        closed = times[times + gap <= df[TS][test].min()]
        if len(closed) >= 2:
            valid = df[TS] == closed[-1]
            return df[TS] < closed[-1], valid, test
    return ~(test | valid), valid, test


def customer_split(df: pd.DataFrame, seed: int) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Masks (train, valid, test) for labels without enough snapshots for a time split (a company's export with one
    as_of): stratified by label and grouped by customer, so no customer is on both sides; about 1/7 each for
    validation and test. scikit-learn's StratifiedGroupKFold draws the folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = StratifiedGroupKFold(n_splits=7, shuffle=True, random_state=seed)
    y, groups = df["label"].to_numpy(), df[ENTITY].to_numpy()
    assigned = np.zeros(len(df), dtype=int)
    for k, (_, rows) in enumerate(folds.split(np.zeros(len(df)), y, groups)):
        assigned[rows] = k
    test, valid = pd.Series(assigned == 0, index=df.index), pd.Series(assigned == 1, index=df.index)
    return ~(test | valid), valid, test


def split(
    df: pd.DataFrame, seed: int, horizon_days: int | None = None
) -> tuple[tuple[pd.Series, pd.Series, pd.Series], str]:
    """The split that fits the labels: by time when they span 3 or more snapshots, else by customer."""
    if df[TS].nunique() >= 3:
        return time_split(df, horizon_days), "time"
    return customer_split(df, seed), "customer"


PART, WEIGHT = "_part", "_weight"  # which split a label row is in (0 train, 1 valid, 2 test); its training weight
MIN_NEGATIVE_SHARE = 0.02


def sample_training(
    labels: pd.DataFrame, masks: tuple[pd.Series, pd.Series, pd.Series], max_rows: int, seed: int
) -> pd.DataFrame:
    """The label rows to join features to, with their split (PART) and weight (WEIGHT). Above `max_rows`, the
    training negatives are sampled (every positive kept; at least MIN_NEGATIVE_SHARE of the negatives) and weigh
    1/share, so the weighted training frame has the base rate of the whole one and calibration holds; validation
    (early stopping, Platt scaling) and test (the metrics) are never sampled. attrs["negative_share"] says how
    much was kept."""
    tr, va, te = (m.to_numpy(bool) for m in masks)
    part = np.select([tr, va, te], [0, 1, 2], -1)
    weight = np.ones(len(labels))
    keep = part >= 0
    negatives = tr & (labels["label"].to_numpy() == 0)
    share = 1.0
    if keep.sum() > max_rows and negatives.any():
        share = max((negatives.sum() - (keep.sum() - max_rows)) / negatives.sum(), MIN_NEGATIVE_SHARE)
        drawn = np.random.default_rng(seed).random(len(labels)) < share
        keep &= ~negatives | drawn
        weight[negatives] = 1.0 / share
    out = labels.assign(**{PART: part, WEIGHT: weight})[keep].reset_index(drop=True)
    out.attrs["negative_share"] = share
    return out


@dataclass
class Prepared:
    frame: pd.DataFrame
    features: list[str]
    masks: tuple[pd.Series, pd.Series, pd.Series]
    split: str
    report: sufficiency.Report
    negative_share: float = 1.0  # of the training negatives kept (sample_training)


def prepare(
    settings: Settings,
    labels: pd.DataFrame,
    service: str,
    *,
    exclude: tuple[str, ...] = (),
    horizon_days: int | None = None,
) -> Prepared:
    """PIT features of `service` for the labelled rows, the features left after `exclude`, the split and the data
    sufficiency report (nothing fitted: `train … --check`)."""
    if labels["label"].nunique() < 2:
        raise ValueError(
            f"label: all {len(labels):,} labels are {int(labels['label'].iloc[0]) if len(labels) else '-'}; a model "
            "needs both outcomes (no conversions or churn in the data yet? give your own with --labels)"
        )
    features = feature_store.feature_names(settings, service)
    if unknown := sorted(set(exclude) - set(features)):
        raise ValueError(
            f"--exclude-features: {', '.join(unknown)} is not a feature of {service} (its features: "
            f"{', '.join(features[:8])}, …)"
        )
    features = [f for f in features if f not in set(exclude)]
    labels = labels.reset_index(drop=True)
    masks, how = split(labels, settings.seed, horizon_days)  # on the labels: the split needs no feature
    labels = sample_training(labels, masks, settings.train_max_rows, settings.seed)
    df = dataset.historical_features(feature_store.open_store(settings), labels, service=service)
    masks = (df[PART] == 0, df[PART] == 1, df[PART] == 2)
    df = df.drop(columns=PART)
    views = {
        v: [c for c in cols if c in features] for v, cols in feature_store.view_features(settings, service).items()
    }
    report = sufficiency.assess(df, masks, how, views, tuple(exclude))
    return Prepared(df, features, masks, how, report, labels.attrs["negative_share"])


def check(
    settings: Settings,
    labels: pd.DataFrame,
    service: str,
    *,
    exclude: tuple[str, ...] = (),
    horizon_days: int | None = None,
) -> dict:
    """The sufficiency report alone (`train … --check`): {"sufficiency": lines, "problems": how many}."""
    report = prepare(settings, labels, service, exclude=exclude, horizon_days=horizon_days).report
    return {"sufficiency": report.lines(), "problems": len(report.problems), "checked": True}


def fit(
    settings: Settings,
    labels: pd.DataFrame,
    service: str,
    *,
    oracle: Oracle | None = None,
    monotone: dict[str, int] | None = None,
    exclude: tuple[str, ...] = (),
    fairness_by: tuple[str, ...] = (),
    name: str = "propensity",
    cold_start: bool = False,
    horizon_days: int | None = None,
) -> Fitted:
    """PIT features of `service` for the labelled rows, split, fit, holdout metrics (and the oracle's); refused
    (InsufficientData) below the sufficiency minimums. A fairness summary per excluded or `fairness_by`
    attribute is computed on the holdout."""
    prep = prepare(settings, labels, service, exclude=exclude, horizon_days=horizon_days)
    if prep.report.problems and not cold_start:
        raise sufficiency.refusal(prep.report, name)
    cold_start = cold_start and bool(prep.report.problems)  # with enough data the regular model is trained
    df, features, (tr, va, te), how = prep.frame, prep.features, prep.masks, prep.split
    if unknown := sorted(set(fairness_by) - set(df.columns)):
        raise ValueError(f"--fairness-by: {', '.join(unknown)} is not a feature of {service}")
    if cold_start and min(prep.report.train) < 1:
        raise sufficiency.InsufficientData(f"{name}: no positives or no negatives to train even a cold-start model")
    params = sufficiency.cold_start_params(int(tr.sum())) if cold_start else None
    boost = None
    if settings.engine == "ray":
        from training.distributed import RayBoost

        boost = RayBoost(settings)
    model = CalibratedLGBMClassifier(seed=settings.seed, monotone=monotone, params=params, boost=boost).fit(
        df[tr],
        df["label"][tr].to_numpy(),
        X_valid=df[va],
        y_valid=df["label"][va].to_numpy(),
        features=features,
        weight=df[WEIGHT][tr].to_numpy() if prep.negative_share < 1 else None,
    )
    p = model.predict_proba(df[te])[:, 1]
    truth = oracle(df[te]) if oracle else None
    metrics = binary_metrics(df["label"][te].to_numpy(), p, truth)
    params = {
        "monotone": str(monotone or {}),
        "split": how,
        "engine": settings.engine,  # where the boosting ran (local, or Ray Train's data-parallel workers)
        "train_negative_share": round(prep.negative_share, 6),
        "heldout_share": round(float((va | te).mean()), 4),
        "excluded_features": ",".join(exclude) or "-",
    }
    if cold_start:
        params["cold_start_limits"] = sufficiency.limits(prep.report)
    groups = {
        a: fairness.by_group(df[te][a], df["label"][te].to_numpy(), p) for a in dict.fromkeys(exclude + fairness_by)
    }
    return Fitted(service, model, df, (tr, va, te), metrics, params, prep.report, groups)


def log_run(settings: Settings, experiment: str, f: Fitted, *, role: str, extra: dict[str, float] | None = None) -> str:
    """An MLflow run for a fit (not registered); returns the run id."""
    with mlflow.start_run(
        experiment_id=tracking.experiment(settings, experiment), run_name=f"{f.service} ({role})"
    ) as run:
        _log_common(settings, f, role=role)
        mlflow.log_metrics(extra or {})
    return run.info.run_id


def log_and_register(
    settings: Settings,
    name: str,
    f: Fitted,
    *,
    extra: dict[str, float] | None = None,
    set_champion: bool | None = None,
) -> dict[str, float | str]:
    """Log the fit with its model (pyfunc over the numpy scorer), register a version, tag its service and
    alias it: `champion` for the first model of its name (or when forced), `challenger` otherwise, so that
    `leadscope promote` decides."""
    with (
        mlflow.start_run(experiment_id=tracking.experiment(settings, name), run_name=f.service) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        _log_common(settings, f, role="candidate")
        mlflow.log_metrics(extra or {})
        _log_plots(f)
        for attr, table in f.fairness.items():
            mlflow.log_text(table.to_csv(index=False), f"fairness/{attr}.csv")
        if f.report is not None:
            mlflow.log_text("\n".join(f.report.lines()) + "\n", "sufficiency.txt")
        path = Path(tmp) / "scorer"
        f.model.scorer_.save(path)
        example = f.frame[f.masks[2]][f.model.scorer_.encoder.features].head(2)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(tracking.__file__).with_name("pyfunc_entry.py")),
            artifacts={"scorer": str(path)},
            signature=infer_signature(example, f.model.predict_proba(example)[:, 1]),
            input_example=example,
            pip_requirements=tracking.requirements(),
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    limits = f.params.get("cold_start_limits")
    alias = tracking.register(
        settings, name, version, f.service, champion=set_champion, cold_start_limits=str(limits) if limits else None
    )
    return {
        **f.metrics,
        **(extra or {}),
        "run_id": run.info.run_id,
        "version": version,
        "feature_service": f.service,
        "alias": alias,
        "split": str(f.params.get("split", "time")),
        "engine": str(f.params.get("engine", "local")),
        "heldout_share": float(f.params.get("heldout_share", 0.0)),
        "sufficiency": f.report.lines() if f.report is not None else [],
        "cold_start_limits": str(limits) if limits else "",
        "fairness": {a: t.to_dict("records") for a, t in f.fairness.items()},
    }


def _log_plots(f: Fitted) -> None:
    """Calibration, gains, SHAP summary and importance PNGs of the holdout, under plots/ in the run."""
    import matplotlib.pyplot as plt

    from training import plots

    te = f.masks[2]
    scorer = f.model.scorer_
    X = scorer.encoder.transform(f.frame[te])
    y = f.frame["label"][te].to_numpy()
    p, contrib = scorer.explain(X)
    feats = scorer.encoder.features
    gain = scorer.booster.feature_importance("gain")
    for name, fig in (
        ("calibration", plots.calibration(y, p)),
        ("gains", plots.gains(y, p)),
        ("shap_summary", plots.shap_summary(contrib, feats)),
        ("feature_importance", plots.importance(gain, feats)),
    ):
        mlflow.log_figure(fig, f"plots/{name}.png")
        plt.close(fig)


def _log_common(settings: Settings, f: Fitted, *, role: str) -> None:
    mlflow.log_params(
        {
            **DEFAULT_PARAMS,
            **f.params,
            "best_iteration": f.model.best_iteration_,
            "seed": settings.seed,
            "feature_service": f.service,
            "n_features": len(f.model.scorer_.encoder.features),
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
