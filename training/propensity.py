"""Lead propensity: P(won within N days of a snapshot), trained from a named FeatureService."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features import store as feature_store
from leadscope.settings import Settings
from training import dataset, pipeline
from training.labels import own_labels, stored_labels
from training.pipeline import Fitted, Oracle, time_split

__all__ = ["Fitted", "time_split", "train", "fit", "MONOTONE"]
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


def fit(
    settings: Settings, labels: pd.DataFrame, service: str, *, oracle: Oracle | None = None, **options: object
) -> Fitted:
    """options: exclude, fairness_by, cold_start (pipeline.fit)."""
    return pipeline.fit(settings, labels, service, oracle=oracle, monotone=MONOTONE, name=MODEL_NAME, **options)


def train(
    settings: Settings,
    *,
    progress: Callable[[str], None] = lambda _: None,
    set_champion: bool | None = None,
    service: str | None = None,
    labels_path: Path | None = None,
    oracle: Oracle | None = None,
    exclude: tuple[str, ...] = (),
    fairness_by: tuple[str, ...] = (),
    check_only: bool = False,
    cold_start: bool = False,
    window_days: int | None = None,
) -> dict[str, float | str]:
    """Fit on the richest available service, log and register it; when that is the graph service, also
    fit and log the same split without graph features, so the runs show what the graph adds. `oracle` (true
    probabilities, evaluation only: training.oracle) adds the oracle's holdout metrics."""
    service = service or (WITH_GRAPH if feature_store.has_service(settings, WITH_GRAPH) else WITHOUT_GRAPH)
    progress("labels")
    own = own_labels(labels_path, settings) if labels_path else stored_labels(settings, MODEL_NAME)
    if own is not None:
        labels = own
    else:
        labels = dataset.conversion_labels(settings, horizon_days=settings.propensity_horizon_days)
    # the outcome window keeps training labels out of the test period; own labels: the window the user names
    horizon = window_days if own is not None else settings.propensity_horizon_days
    if check_only:
        progress(f"point-in-time features ({service})")
        return pipeline.check(settings, labels, service, exclude=exclude, horizon_days=horizon)
    progress(f"point-in-time features and fit ({service})")
    options = {"exclude": exclude, "fairness_by": fairness_by, "cold_start": cold_start, "horizon_days": horizon}
    main = fit(settings, labels, service, oracle=None if own is not None else oracle, **options)
    extra: dict[str, float] = {}
    if service == WITH_GRAPH and "cold_start_limits" not in main.params:
        progress(f"comparison fit ({WITHOUT_GRAPH})")
        base = fit(
            settings,
            labels,
            WITHOUT_GRAPH,
            oracle=None if own is not None else oracle,
            exclude=exclude,
            horizon_days=horizon,
        )
        pipeline.log_run(settings, MODEL_NAME, base, role="comparison")
        extra = {
            "roc_auc_without_graph": base.metrics["roc_auc"],
            "graph_roc_auc_gain": main.metrics["roc_auc"] - base.metrics["roc_auc"],
        }
    progress("logging to MLflow")
    return pipeline.log_and_register(settings, MODEL_NAME, main, extra=extra, set_champion=set_champion)
