"""Derived purchase features at one cut: RFM scores, diversity, trend, cadence, lifecycle stage and tags.

Pure functions of per-customer arrays computed by `engineering.transaction_features` (all as of the cut).
"""

from __future__ import annotations

import numpy as np

STAGES = ("prospect", "new", "active", "at_risk", "lapsed")  # lifecycle_stage values
HIGH_VALUE_QUANTILE = 0.9
PRICE_SENSITIVE_PROMO_SHARE = 0.5


def quintile_score(x: np.ndarray, buyers: np.ndarray, *, higher_is_better: bool = True) -> np.ndarray:
    """1–5 by quintile among buyers at this cut (5 = best); 0 for customers without orders."""
    out = np.zeros(len(x))
    if buyers.sum() == 0:
        return out
    v = x[buyers] if higher_is_better else -x[buyers]
    edges = np.quantile(v, [0.2, 0.4, 0.6, 0.8])
    out[buyers] = 1 + np.searchsorted(edges, v, side="right")
    return out


def derive(
    *,
    count: np.ndarray,
    amount_365: np.ndarray,
    amount_30: np.ndarray,
    amount_30_120: np.ndarray,
    recency: np.ndarray,
    first_days_ago: np.ndarray,
    span_days: np.ndarray,
    categories: np.ndarray,
    promo: np.ndarray,
    monetary: np.ndarray,
) -> dict[str, np.ndarray]:
    buyers = count > 0
    promo_share = np.divide(promo, count, out=np.zeros(len(count)), where=buyers)
    high_value_cut = np.quantile(amount_365[buyers], HIGH_VALUE_QUANTILE) if buyers.any() else np.inf
    stage = np.select(
        [~buyers, first_days_ago <= 30, recency <= 90, recency <= 180],
        ["prospect", "new", "active", "at_risk"],
        "lapsed",
    )
    return {
        "tx_rfm_recency_score": quintile_score(recency, buyers, higher_is_better=False),
        "tx_rfm_frequency_score": quintile_score(count, buyers),
        "tx_rfm_monetary_score": quintile_score(monetary, buyers),
        "tx_category_diversity": categories,
        "tx_spend_trend": (amount_30 + 1.0) / (amount_30_120 / 3.0 + 1.0),
        "tx_days_between_orders": np.divide(span_days, count - 1, out=np.full(len(count), np.nan), where=count > 1),
        "tx_promo_share": promo_share,
        "tag_high_value": (buyers & (amount_365 >= high_value_cut)).astype(float),
        "tag_price_sensitive": ((count >= 2) & (promo_share >= PRICE_SENSITIVE_PROMO_SHARE)).astype(float),
        "lifecycle_stage": stage,
    }
