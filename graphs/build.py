"""Build step: raw edges (and outcomes) → the `customer_graph` Feast source at the feature cut times."""

from __future__ import annotations

import json

import pandas as pd

from features.build import read_table
from graphs.features import graph_features
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings

VIEW = "customer_graph"


def first_stage(stages: pd.DataFrame, stage: str) -> pd.Series:
    s = stages[stages["stage"] == stage]
    return s.assign(ts=pd.to_datetime(s["ts"], utc=True)).groupby(ENTITY)["ts"].min()


def build(settings: Settings) -> int:
    """Write customer_graph.parquet and register its columns in the feature schema; returns its rows."""
    raw = settings.raw_dir
    meta = json.loads((settings.feature_dir / "meta.json").read_text())
    stages = read_table(raw, "stages")
    df = graph_features(
        edges=read_table(raw, "edges"),
        customers=read_table(raw, "customers"),
        won_at=first_stage(stages, "won"),
        churned_at=first_stage(stages, "churned"),
        transactions=read_table(raw, "transactions"),
        events=read_table(raw, "events"),
        cuts=pd.DatetimeIndex([pd.Timestamp(c) for c in meta["cuts"]]),
        seed=settings.seed,
    )
    df.to_parquet(settings.feature_dir / f"{VIEW}.parquet", index=False)
    path = settings.feature_dir / "schema.json"
    schema = json.loads(path.read_text())
    schema[VIEW] = {
        c: ("string" if pd.api.types.is_string_dtype(df[c]) else "float") for c in df.columns if c not in (ENTITY, TS)
    }
    path.write_text(json.dumps(schema, indent=1))
    return len(df)
