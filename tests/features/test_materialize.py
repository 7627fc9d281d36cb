"""Incremental materialisation moves only the new time range, and the online store then has the new values."""

from __future__ import annotations

import pandas as pd

from features import store
from features.build import build
from leadscope.tables import read_feature_meta
from tests.conftest import prepare, small_settings


def test_incremental_materialisation_moves_only_what_is_new(tmp_path) -> None:
    settings = small_settings(tmp_path, customers=600)
    prepare(settings, train=False)
    fs = store.open_store(settings)
    assert store.materialize_incremental(fs, settings) == {}  # nothing new: nothing moved

    old_end = read_feature_meta(settings.feature_dir).end
    events = pd.read_parquet(settings.raw_dir / "events.parquet")
    who = events["customer_id"].iloc[0]
    late = events.head(5).assign(
        event_id=lambda d: "new-" + d["event_id"],
        customer_id=who,
        event_type="pricing_view",
        ts=old_end + pd.Timedelta(days=3),
    )
    pd.concat([events, late]).to_parquet(settings.raw_dir / "events.parquet", index=False)
    build(settings, online=False)  # new sources and registry; the online store keeps its old rows
    fs = store.open_store(settings)
    moved = store.materialize_incremental(fs, settings)
    assert set(moved) >= {"customer_engagement", "customer_transactions"}
    assert all(pd.Timestamp(start) >= old_end for start, _ in moved.values())  # not the whole history again
    online = fs.get_online_features(
        features=["customer_engagement:pricing_view_total"], entity_rows=[{"customer_id": who}]
    ).to_dict()
    offline = pd.read_parquet(settings.feature_dir / "customer_engagement.parquet")
    newest = offline[offline["customer_id"] == who].sort_values("event_timestamp").iloc[-1]
    assert online["pricing_view_total"][0] == newest["pricing_view_total"]
    assert newest["event_timestamp"] > old_end
