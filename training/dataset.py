"""Training sets: labelled entity rows (customer, snapshot) → point-in-time features from Feast."""

from __future__ import annotations

import numpy as np
import pandas as pd
from feast import FeatureStore

from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import read_feature_meta, read_table

SNAPSHOT_EVERY_DAYS = 7
WARMUP_DAYS = 90


def snapshots(settings: Settings, *, horizon_days: int) -> list[pd.Timestamp]:
    """Feature cut times (so PIT rows are exact), every 4 weeks, whose label window has fully elapsed."""
    meta = read_feature_meta(settings.feature_dir)
    cuts, end, start = meta.cuts, meta.end, meta.start
    step = max(1, SNAPSHOT_EVERY_DAYS // settings.feature_cadence_days)
    usable = [
        c for c in cuts if c + pd.Timedelta(days=horizon_days) <= end and c >= start + pd.Timedelta(days=WARMUP_DAYS)
    ]
    return usable[::-1][::step][::-1]


def conversion_labels(settings: Settings, *, horizon_days: int) -> pd.DataFrame:
    """Rows (customer_id, event_timestamp, label): open leads at each snapshot, 1 if won within the horizon."""
    customers = read_table(settings.raw_dir, "customers")[[ENTITY, "created_at"]]
    stages = read_table(settings.raw_dir, "stages")
    won = (
        stages[stages["stage"] == "won"]
        .assign(ts=lambda d: pd.to_datetime(d["ts"], utc=True))
        .groupby(ENTITY)["ts"]
        .min()
    )
    created = pd.to_datetime(customers["created_at"], utc=True)
    won_at = customers[ENTITY].map(won)
    frames = []
    for s in snapshots(settings, horizon_days=horizon_days):
        open_lead = (created <= s) & ~(won_at <= s)
        label = (won_at > s) & (won_at <= s + pd.Timedelta(days=horizon_days))
        frames.append(
            pd.DataFrame(
                {
                    ENTITY: customers[ENTITY][open_lead].to_numpy(),
                    TS: s,
                    "label": label[open_lead].astype(int).to_numpy(),
                }
            )
        )
    if not frames:
        raise ValueError("no snapshot has a complete label window: the data covers too short a period")
    return pd.concat(frames, ignore_index=True)


def historical_features(store: FeatureStore, entity_rows: pd.DataFrame, *, service: str) -> pd.DataFrame:
    """Point-in-time join of every feature in `service`, returned in the entity rows' order."""
    rows = entity_rows.reset_index(drop=True).assign(_row=lambda d: np.arange(len(d)))
    job = store.get_historical_features(entity_df=rows, features=store.get_feature_service(service))
    df = job.to_df()
    return df.sort_values("_row").drop(columns="_row").reset_index(drop=True)
