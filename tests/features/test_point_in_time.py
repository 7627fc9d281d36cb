"""Feast point-in-time retrieval: a snapshot's training features ignore everything after the snapshot."""

from __future__ import annotations

import pandas as pd

from features import store
from features.build import build
from tests.conftest import prepare, small_settings
from training import dataset


def test_events_after_the_snapshot_do_not_change_its_training_features(tmp_path) -> None:
    # broken: the model would train on the future; holdout AUC would not survive production
    settings = small_settings(tmp_path, customers=800)
    prepare(settings, train=False)
    labels = dataset.conversion_labels(settings, horizon_days=30)
    snap = sorted(labels["event_timestamp"].unique())[-2]
    rows = labels[labels["event_timestamp"] == snap].head(300)
    nxt = rows.assign(event_timestamp=pd.Timestamp(snap) + pd.Timedelta(days=settings.feature_cadence_days))
    before = dataset.historical_features(store.open_store(settings), rows, service="customer_360")
    next_before = dataset.historical_features(store.open_store(settings), nxt, service="customer_360")

    events = pd.read_parquet(settings.raw_dir / "events.parquet")
    late = events[events["customer_id"].isin(rows["customer_id"])].head(500).copy()
    late["event_id"] = "late-" + late["event_id"]
    late["ts"] = pd.Timestamp(snap) + pd.Timedelta(hours=1)
    late["event_type"] = "pricing_view"
    pd.concat([events, late]).to_parquet(settings.raw_dir / "events.parquet", index=False)
    build(settings)
    store.apply(settings)
    after = dataset.historical_features(store.open_store(settings), rows, service="customer_360")

    assert len(before) == len(rows) and before.notna().any().all()
    pd.testing.assert_frame_equal(before, after)
    # the added events do show one cut later, so the equality above is not vacuous
    next_after = dataset.historical_features(store.open_store(settings), nxt, service="customer_360")
    added = next_after["pricing_view_total"].sum() - next_before["pricing_view_total"].sum()
    assert added == len(late)
