"""A named custom binary outcome (`leadscope train outcome --name upsell --labels F`): the company's own labels,
the same pipeline as propensity and churn (sufficiency report, split, calibrated LightGBM, MLflow run, registry),
its own FeatureService (`outcome_<name>_v1`), MLflow model and champion, served as `models: ["<name>"]`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from features import store as feature_store
from leadscope import outcomes
from leadscope.settings import Settings
from training import pipeline
from training.labels import own_labels


def train(
    settings: Settings,
    name: str,
    labels_path: Path,
    *,
    progress: Callable[[str], None] = lambda _: None,
    set_champion: bool | None = None,
    exclude: tuple[str, ...] = (),
    fairness_by: tuple[str, ...] = (),
    check_only: bool = False,
    cold_start: bool = False,
    window_days: int | None = None,
) -> dict:
    """Validate the labels, declare the outcome's FeatureService, fit, log and register `name`. A refused fit (or
    a --check) leaves no new outcome behind."""
    outcomes.check_name(name)
    progress("labels")
    labels = own_labels(labels_path, settings)
    new, kept = outcomes.add(settings, name), False
    try:
        if new:
            progress(f"feature service {outcomes.service(name)}")
            feature_store.apply(settings)
        service = outcomes.service(name)
        if check_only:
            progress(f"point-in-time features ({service})")
            return pipeline.check(settings, labels, service, exclude=exclude, horizon_days=window_days)
        progress(f"point-in-time features and fit ({service})")
        fitted = pipeline.fit(
            settings,
            labels,
            service,
            exclude=exclude,
            fairness_by=fairness_by,
            name=name,
            cold_start=cold_start,
            horizon_days=window_days,
        )
        fitted.params |= {"outcome": name}
        progress("logging to MLflow")
        out = pipeline.log_and_register(settings, name, fitted, set_champion=set_champion)
        kept = True
        return out
    finally:
        if new and not kept:  # the registry's service goes with the next features build
            outcomes.remove(settings, name)
