"""The generator's ground truth as evaluation oracles: what the best possible model would say.

Only evaluation code reads the truth: this module, nba_eval and lookalike_eval, and the composition root (the
CLI), benchmarks and tests that hand an oracle to a training run. Production training takes an optional oracle
callable and never imports this module, so on a real company's data (no truth folder) nothing here runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.synth import truth as synth_truth

RowsOracle = Callable[[pd.DataFrame], np.ndarray | None]


def truth_dir(settings: Settings) -> Path:
    return settings.raw_dir / "truth"


def available(settings: Settings) -> bool:
    """True when the raw data came from our generator (its truth folder sits beside it)."""
    return (truth_dir(settings) / "customers.parquet").exists()


def customers(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(truth_dir(settings) / "customers.parquet")


def conversion_probability(settings: Settings, rows: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """P(won within the horizon | hidden traits) per (customer_id, event_timestamp) row."""
    world = synth_truth.load_world(truth_dir(settings))
    return synth_truth.true_conversion_probability(customers(settings), world, rows[ENTITY], rows[TS], horizon_days)


def churn_probability(settings: Settings, rows: pd.DataFrame) -> np.ndarray:
    """P(churn within the horizon) per row, under the configured churn definition."""
    truth, horizon = customers(settings), settings.churn_horizon_days
    if settings.churn_definition == "no_purchase":
        world = synth_truth.load_world(truth_dir(settings))
        return synth_truth.true_no_purchase_probability(truth, world, rows[ENTITY], rows[TS], horizon)
    t = truth.set_index(ENTITY).loc[rows[ENTITY].to_numpy()]
    return (1 - np.exp(-t["churn_hazard"].to_numpy() * horizon)) * t["contractual"].to_numpy()


def expected_value(settings: Settings, rows: pd.DataFrame, horizon: int) -> np.ndarray:
    """True expected net spend over the horizon per row (0 for a customer who churned by the row's time)."""
    t = customers(settings).set_index(ENTITY).loc[rows[ENTITY].to_numpy()]
    alive = ~(pd.to_datetime(t["churned_at"], utc=True) <= rows[TS].to_numpy())
    return np.where(alive, synth_truth.true_expected_spend(t.reset_index(), horizon), 0.0)


def person_ids(settings: Settings) -> pd.Series:
    """customer_id → the person the generator planted behind it (duplicates share one)."""
    return customers(settings)[[ENTITY, "person_id"]].set_index(ENTITY)["person_id"]


def for_propensity(settings: Settings) -> RowsOracle | None:
    if not available(settings):
        return None
    return lambda rows: conversion_probability(settings, rows, settings.propensity_horizon_days)


def for_churn(settings: Settings) -> RowsOracle | None:
    return (lambda rows: churn_probability(settings, rows)) if available(settings) else None


def for_value(settings: Settings) -> Callable[[pd.DataFrame, int], np.ndarray] | None:
    return (lambda rows, horizon: expected_value(settings, rows, horizon)) if available(settings) else None
