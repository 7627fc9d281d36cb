"""Names the built-in feature views produce, found by running their own feature functions on a two-customer
company: custom attributes may not take them (kept apart from build.py so an import does not load Feast)."""

from __future__ import annotations

import functools
import warnings

import pandas as pd

from features import engineering
from graphs.features import graph_features
from leadscope.schema import ENTITY, TS


@functools.cache
def builtin_feature_columns() -> frozenset[str]:
    """Every column the built-in views produce (engagement, transactions, graph), found by running the same
    feature functions on a two-customer company: custom attributes may not take these names."""
    at = pd.Timestamp("2026-01-05", tz="UTC")
    cust = pd.DataFrame({ENTITY: ["a", "b"], "created_at": [at - pd.Timedelta(days=4)] * 2})
    tx = pd.DataFrame({"transaction_id": ["t"], ENTITY: ["a"], "ts": [at], "amount": [1.0], "category": ["x"]})
    ev = pd.DataFrame({"event_id": ["e"], ENTITY: ["a"], "ts": [at], "channel": ["web"], "event_type": ["page_view"]})
    edges = pd.DataFrame({"src_customer_id": ["a"], "dst_customer_id": ["b"], "ts": [at], "kind": ["follow"]})
    cuts = engineering.cut_times(start=at - pd.Timedelta(days=7), end=at + pd.Timedelta(days=14), cadence_days=7)
    never = pd.Series(dtype="datetime64[ns, UTC]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # means over empty slices of a two-node graph
        frames = [
            engineering.transaction_features(tx, cust, cuts),
            engineering.engagement_features(ev, cust, cuts),
            graph_features(
                edges=edges, customers=cust, won_at=never, churned_at=never, transactions=tx, events=ev, cuts=cuts
            ),
        ]
    return frozenset(c for f in frames for c in f.columns) - {ENTITY, TS}
