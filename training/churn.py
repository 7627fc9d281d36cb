"""Churn: P(a paying customer churns within N days of a snapshot), by a configurable definition.

no_purchase (non-contractual): no order in (t, t+N]. cancellation (contractual): a `churned` CRM stage in
(t, t+N] for customers not churned by t.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import read_table
from training import dataset, pipeline
from training.labels import own_labels, stored_labels
from training.pipeline import Oracle

MODEL_NAME = "churn"
SERVICE = "churn_v1"
MONOTONE = {"tx_recency_days": 1}  # longer since the last order never means less risk


def churn_labels(settings: Settings) -> pd.DataFrame:
    """(customer_id, event_timestamp, label) for paying customers at each snapshot."""
    horizon, definition = settings.churn_horizon_days, settings.churn_definition
    stages = read_table(settings.raw_dir, "stages").assign(ts=lambda d: pd.to_datetime(d["ts"], utc=True))
    won = stages[stages["stage"] == "won"].groupby(ENTITY)["ts"].min()
    cancelled = stages[stages["stage"] == "churned"].groupby(ENTITY)["ts"].min()
    tx = read_table(settings.raw_dir, "transactions")
    tx = tx[~tx.get("is_refund", pd.Series(False, index=tx.index)).fillna(False).astype(bool)]
    tx = tx.assign(ts=pd.to_datetime(tx["ts"], utc=True)).sort_values("ts")
    frames = []
    for s in dataset.snapshots(settings, horizon_days=horizon):
        end = s + pd.Timedelta(days=horizon)
        payers = won[won <= s].index
        if definition == "cancellation":
            gone = cancelled.reindex(payers)
            payers = payers[~(gone <= s).to_numpy()]
            label = ((gone.reindex(payers) > s) & (gone.reindex(payers) <= end)).to_numpy()
        else:
            window = tx[(tx["ts"] > s) & (tx["ts"] <= end)]
            label = ~payers.isin(window[ENTITY].unique())
        frames.append(pd.DataFrame({ENTITY: payers.to_numpy(), TS: s, "label": np.asarray(label, dtype=int)}))
    if not frames:
        raise ValueError("no snapshot has a complete churn window: the data covers too short a period")
    return pd.concat(frames, ignore_index=True)


def train(
    settings: Settings,
    *,
    progress: Callable[[str], None] = lambda _: None,
    set_champion: bool | None = None,
    oracle: Oracle | None = None,
    labels_path: Path | None = None,
    exclude: tuple[str, ...] = (),
    fairness_by: tuple[str, ...] = (),
    check_only: bool = False,
    cold_start: bool = False,
    window_days: int | None = None,
) -> dict[str, float | str]:
    """Fit the churn model on churn_v1, log and register it (with the oracle's metrics when one is given). With
    `labels_path` (or labels imported for `churn`), the company's own churn outcomes replace the definition."""
    progress("labels")
    own = own_labels(labels_path, settings) if labels_path else stored_labels(settings, MODEL_NAME)
    labels = own if own is not None else churn_labels(settings)
    # the outcome window keeps training labels out of the test period; own labels: the window the user names
    horizon = window_days if own is not None else settings.churn_horizon_days
    if check_only:
        progress(f"point-in-time features ({SERVICE})")
        return pipeline.check(settings, labels, SERVICE, exclude=exclude, horizon_days=horizon)
    progress(f"point-in-time features and fit ({SERVICE})")
    fitted = pipeline.fit(
        settings,
        labels,
        SERVICE,
        oracle=None if own is not None else oracle,
        monotone=MONOTONE,
        exclude=exclude,
        fairness_by=fairness_by,
        name=MODEL_NAME,
        cold_start=cold_start,
        horizon_days=horizon,
    )
    definition = "own labels" if own is not None else settings.churn_definition
    fitted.params |= {"horizon_days": settings.churn_horizon_days, "definition": definition}
    progress("logging to MLflow")
    return pipeline.log_and_register(settings, MODEL_NAME, fitted, set_champion=set_champion)
