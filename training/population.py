"""The population a lookalike audience is drawn from: every customer's features at the newest snapshot, read
point-in-time from the Feast offline store (the rows the online store was materialised from), plus the graph."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import store as feature_store
from graphs.social import undirected
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import read_feature_meta, read_table
from training.dataset import historical_features
from training.lookalike import Population
from training.scorer import Encoder

SERVICE = "lookalike_v1"
FRAME_SERVICE = "customer_360"  # superset: insight attributes and the propensity model's inputs


def load(settings: Settings, store: object | None = None) -> Population:
    as_of = read_feature_meta(settings.feature_dir).end
    store = store or feature_store.open_store(settings)
    ids = read_table(settings.raw_dir, "customers")[ENTITY]
    rows = pd.DataFrame({ENTITY: ids.to_numpy(), TS: as_of})
    service = FRAME_SERVICE if feature_store.has_service(settings, FRAME_SERVICE) else SERVICE
    frame = historical_features(store, rows, service=service)
    names = feature_store.feature_names(settings, SERVICE if feature_store.has_service(settings, SERVICE) else service)
    encoder = Encoder.fit(frame, names)
    X = encoder.transform(frame).astype(np.float32)
    graph = None
    if (settings.raw_dir / "edges.parquet").exists():
        edges = read_table(settings.raw_dir, "edges")
        edges = edges[pd.to_datetime(edges["ts"], utc=True) <= as_of]
        index = pd.Index(frame[ENTITY])
        graph = undirected(
            index.get_indexer(edges["src_customer_id"]), index.get_indexer(edges["dst_customer_id"]), len(frame)
        )
    bought = (
        frame["tx_count_total"].fillna(0).to_numpy() > 0 if "tx_count_total" in frame else np.zeros(len(frame), bool)
    )
    opted_out = (
        ~frame["consent_ads"].eq(1).to_numpy() if "consent_ads" in frame else np.ones(len(frame), bool)
    )  # default-deny
    return Population(
        ids=frame[ENTITY].to_numpy(dtype=object),
        X=X,
        encoder=encoder,
        graph=graph,
        bought=bought,
        opted_out=opted_out,
        as_of=as_of.isoformat(),
        frame=frame,
    )
