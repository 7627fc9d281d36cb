"""Derived purchase features at one cut: RFM scores, diversity, trend, cadence, lifecycle stage and tags.

Pure functions of per-customer arrays computed by `engineering.transaction_features` (all as of the cut).
"""

from __future__ import annotations

import numpy as np

STAGES = ("prospect", "new", "active", "at_risk", "lapsed")  # lifecycle_stage values
HIGH_VALUE_QUANTILE = 0.9
PRICE_SENSITIVE_PROMO_SHARE = 0.5


def quintile_edges(x: np.ndarray, buyers: np.ndarray, *, higher_is_better: bool = True) -> list[float] | None:
    if buyers.sum() == 0:
        return None
    v = x[buyers] if higher_is_better else -x[buyers]
    return [float(e) for e in np.quantile(v, [0.2, 0.4, 0.6, 0.8])]


def quintile_score(
    x: np.ndarray, buyers: np.ndarray, *, higher_is_better: bool = True, edges: list[float] | None = None
) -> np.ndarray:
    """1–5 by quintile among buyers at this cut (5 = best); 0 for customers without orders. `edges`: the
    population's quintiles, when `x` holds only some customers (a live recompute)."""
    out = np.zeros(len(x))
    edges = edges if edges is not None else quintile_edges(x, buyers, higher_is_better=higher_is_better)
    if edges is None or buyers.sum() == 0:
        return out
    v = x[buyers] if higher_is_better else -x[buyers]
    out[buyers] = 1 + np.searchsorted(np.asarray(edges), v, side="right")
    return out


def reference(*, count: np.ndarray, amount_365: np.ndarray, recency: np.ndarray, monetary: np.ndarray) -> dict:
    """The population statistics the relative features need (quintile edges, the high-value cut): computed over
    every customer by the batch build, reused by live recomputes of a few customers until the next build."""
    buyers = count > 0
    return {
        "recency": quintile_edges(recency, buyers, higher_is_better=False),
        "count": quintile_edges(count, buyers),
        "monetary": quintile_edges(monetary, buyers),
        "high_value_cut": float(np.quantile(amount_365[buyers], HIGH_VALUE_QUANTILE)) if buyers.any() else None,
    }


# The features that rank a customer against the population at the cut, and the columns they read: computed after
# the per-customer pass (engineering.with_relative), so that pass can run on any slice of the customers.
RELATIVE = ("tx_rfm_recency_score", "tx_rfm_frequency_score", "tx_rfm_monetary_score", "tag_high_value")
REFERENCE_INPUTS = {
    "count": "tx_count_total",
    "amount_365": "tx_amount_365d",
    "recency": "tx_recency_days",
    "monetary": "tx_amount_total",
}


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
) -> dict[str, np.ndarray]:
    """Every derived feature of one customer's own history; the RELATIVE ones are NaN here, in their place, and
    filled by `relative` once the population's statistics are known."""
    buyers = count > 0
    promo_share = np.divide(promo, count, out=np.zeros(len(count)), where=buyers)
    stage = np.select(
        [~buyers, first_days_ago <= 30, recency <= 90, recency <= 180],
        ["prospect", "new", "active", "at_risk"],
        "lapsed",
    )
    todo = np.full(len(count), np.nan)
    return {
        "tx_rfm_recency_score": todo,
        "tx_rfm_frequency_score": todo,
        "tx_rfm_monetary_score": todo,
        "tx_category_diversity": categories,
        # net of refunds a window can be negative: a refund of 3 made the ratio infinite, larger ones negative
        "tx_spend_trend": (np.maximum(amount_30, 0.0) + 1.0) / (np.maximum(amount_30_120, 0.0) / 3.0 + 1.0),
        "tx_days_between_orders": np.divide(span_days, count - 1, out=np.full(len(count), np.nan), where=count > 1),
        "tx_promo_share": promo_share,
        "tag_high_value": todo,
        "tag_price_sensitive": ((count >= 2) & (promo_share >= PRICE_SENSITIVE_PROMO_SHARE)).astype(float),
        "lifecycle_stage": stage,
    }


def relative(
    *, count: np.ndarray, amount_365: np.ndarray, recency: np.ndarray, monetary: np.ndarray, ref: dict
) -> dict[str, np.ndarray]:
    """The RELATIVE features of some customers at one cut, against the population statistics `ref` (reference)."""
    buyers = count > 0
    high_value_cut = ref["high_value_cut"] if ref["high_value_cut"] is not None else np.inf
    return {
        "tx_rfm_recency_score": quintile_score(recency, buyers, higher_is_better=False, edges=ref["recency"]),
        "tx_rfm_frequency_score": quintile_score(count, buyers, edges=ref["count"]),
        "tx_rfm_monetary_score": quintile_score(monetary, buyers, edges=ref["monetary"]),
        "tag_high_value": (buyers & (amount_365 >= high_value_cut)).astype(float),
    }
