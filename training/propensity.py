"""Lead propensity: P(won within N days of a snapshot), trained from a named FeatureService."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features import store as feature_store
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import read_feature_meta, read_table
from training import dataset, pipeline
from training.pipeline import Fitted, Oracle, time_split

__all__ = ["Fitted", "time_split", "train", "fit", "own_labels", "MONOTONE"]
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


def own_labels(path: Path, settings: Settings) -> pd.DataFrame:
    """A company's outcome table (customer_id, as_of, label) as entity rows. The whole file is refused (ValueError
    naming the column and the count) when any row is invalid, names a customer leadscope does not know, is dated
    after the data ends (its behaviour features would be empty), or when every label is the same: a model trained
    on such labels would be registered and look like a model."""
    from features import files, ingest

    raw = files.read(path, "labels")
    rows, rejects = ingest.validate("labels", raw, file=path.name, known_customers=set(raw["customer_id"].astype(str)))
    if not rejects.empty:
        first = rejects.iloc[0]
        raise ValueError(
            f"{path.name}: {len(rejects)} invalid label rows, e.g. row {first['row']} "
            f"column {first['column']}: {first['reason']}"
        )
    known = set(read_table(settings.raw_dir, "customers", columns=[ENTITY])[ENTITY].astype(str))
    unknown = ~rows["customer_id"].astype(str).isin(known).to_numpy(bool)
    if unknown.any():
        raise ValueError(
            f"{path.name}: customer_id: {unknown.sum():,} of {len(rows):,} labels name customers that are not in "
            f"the customers table (first at row {int(unknown.argmax()) + 1}); import them first"
        )
    end = read_feature_meta(settings.feature_dir).end
    late = (rows["as_of"] > end).to_numpy(bool)
    if late.any():
        raise ValueError(
            f"{path.name}: as_of: {late.sum():,} of {len(rows):,} labels are dated after the data ends "
            f"({end:%Y-%m-%d}; first at row {int(late.argmax()) + 1}); features at that time would be empty"
        )
    if rows["label"].nunique() < 2:
        raise ValueError(
            f"{path.name}: label: all {len(rows):,} labels are {int(rows['label'].iloc[0])}; a model needs both "
            "outcomes"
        )
    return pd.DataFrame(
        {ENTITY: rows["customer_id"].astype(str), TS: rows["as_of"], "label": rows["label"].astype(int)}
    )


def fit(settings: Settings, labels: pd.DataFrame, service: str, *, oracle: Oracle | None = None) -> Fitted:
    return pipeline.fit(settings, labels, service, oracle=oracle, monotone=MONOTONE)


def train(
    settings: Settings,
    *,
    progress: Callable[[str], None] = lambda _: None,
    set_champion: bool | None = None,
    service: str | None = None,
    labels_path: Path | None = None,
    oracle: Oracle | None = None,
) -> dict[str, float | str]:
    """Fit on the richest available service, log and register it; when that is the graph service, also
    fit and log the same split without graph features, so the runs show what the graph adds. `oracle` (true
    probabilities, evaluation only: training.oracle) adds the oracle's holdout metrics."""
    service = service or (WITH_GRAPH if feature_store.has_service(settings, WITH_GRAPH) else WITHOUT_GRAPH)
    progress("labels")
    if labels_path:
        labels = own_labels(labels_path, settings)
    else:
        labels = dataset.conversion_labels(settings, horizon_days=settings.propensity_horizon_days)
    progress(f"point-in-time features and fit ({service})")
    main = fit(settings, labels, service, oracle=None if labels_path else oracle)
    extra: dict[str, float] = {}
    if service == WITH_GRAPH:
        progress(f"comparison fit ({WITHOUT_GRAPH})")
        base = fit(settings, labels, WITHOUT_GRAPH, oracle=None if labels_path else oracle)
        pipeline.log_run(settings, MODEL_NAME, base, role="comparison")
        extra = {
            "roc_auc_without_graph": base.metrics["roc_auc"],
            "graph_roc_auc_gain": main.metrics["roc_auc"] - base.metrics["roc_auc"],
        }
    progress("logging to MLflow")
    return pipeline.log_and_register(settings, MODEL_NAME, main, extra=extra, set_champion=set_champion)
