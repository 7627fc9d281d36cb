"""The oracle: what the generator knows that models must estimate (true probabilities, uplift, segment)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from leadscope.synth.world import World


def load_world(truth_dir: Path) -> World:
    meta = json.loads((truth_dir / "world.json").read_text())
    return World(start=datetime.fromisoformat(meta["start"]), days=int(meta["days"]))


def true_conversion_probability(
    truth: pd.DataFrame, world: World, customer_ids: pd.Series, as_of: pd.Series, horizon_days: float
) -> np.ndarray:
    """P(convert in (as_of, as_of+H] | traits, not converted by as_of); NaN where not a lead at as_of."""
    t = truth.set_index("customer_id").loc[np.asarray(customer_ids)]
    s = world.to_days(pd.Series(pd.to_datetime(np.asarray(as_of), utc=True)))
    created = world.to_days(t["created_at"])
    converted = world.to_days(t["converted_at"].fillna(pd.Timestamp.max.tz_localize("UTC")))
    p = 1.0 - np.exp(-t["conversion_scale"].to_numpy() * world.integral(s, s + horizon_days))
    return np.where((created <= s) & (converted > s), p, np.nan)


def true_expected_spend(truth: pd.DataFrame, horizon_days: float) -> np.ndarray:
    """Expected spend over the next H days for a customer alive now (constant rate, exponential churn)."""
    k, rate, aov = truth["churn_hazard"].to_numpy(), truth["order_rate"].to_numpy(), truth["aov"].to_numpy()
    alive_days = (1.0 - np.exp(-k * horizon_days)) / k
    return rate * aov * alive_days


def true_no_purchase_probability(
    truth: pd.DataFrame, world: World, customer_ids: pd.Series, as_of: pd.Series, horizon_days: int
) -> np.ndarray:
    """P(no order in (as_of, as_of+H]) for a paying customer: 1 if already churned, else integrated over the
    remaining lifetime (exponential churn) of a seasonal Poisson order process."""
    t = truth.set_index("customer_id").loc[np.asarray(customer_ids)]
    s = world.to_days(pd.Series(pd.to_datetime(np.asarray(as_of), utc=True)))
    churned = world.to_days(t["churned_at"].fillna(pd.Timestamp.max.tz_localize("UTC")))
    kappa, mu = t["churn_hazard"].to_numpy(), t["order_rate"].to_numpy()
    S = world.cumulative(cooling=False)
    steps = np.arange(horizon_days + 1, dtype=float)
    orders = mu[:, None] * (np.interp(s[:, None] + steps, world.grid, S) - np.interp(s, world.grid, S)[:, None])
    none_if_alive_until = np.exp(-orders)  # P(no order in (s, s+t]) while alive for t days
    dens = kappa[:, None] * np.exp(-kappa[:, None] * steps)
    p = (
        np.trapezoid(dens * none_if_alive_until, steps, axis=1)
        + np.exp(-kappa * horizon_days) * none_if_alive_until[:, -1]
    )
    return np.where(churned <= s, 1.0, p)
