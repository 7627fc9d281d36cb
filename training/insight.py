"""Audience insight: who an audience is, next to the population it came from.

Every attribute becomes a small set of readable values (categories as they are, numbers in bands, flags as
yes/no, missing as "unknown"); an audience is described by the values it over- or under-represents.
The lift's 95 % interval is Katz's log risk-ratio interval (audience share / population share); statsmodels has
it only for two independent samples, and the audience is part of the population, so it is written here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

BANDS: dict[str, tuple[list[float], list[str]]] = {
    "age": ([18, 25, 35, 45, 55, 65, np.inf], ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]),
    "company_size": ([0, 10, 50, 250, 1000, np.inf], ["1-9", "10-49", "50-249", "250-999", "1000+"]),
    "social_followers": ([0, 100, 1_000, 10_000, 100_000, np.inf], ["<100", "100-1k", "1k-10k", "10k-100k", "100k+"]),
    "tx_amount_365d": ([-np.inf, 0.01, 100, 500, 2_000, np.inf], ["none", "<100", "100-500", "500-2k", "2k+"]),
    "touches_90d": ([0, 1, 5, 20, np.inf], ["0", "1-4", "5-19", "20+"]),
    "tenure_days": ([0, 90, 180, 365, np.inf], ["<3 months", "3-6 months", "6-12 months", "1 year+"]),
    "followers_count": ([0, 1, 5, 20, np.inf], ["0", "1-4", "5-19", "20+"]),
}
BAND_NAMES = {f: f"{f}_band" for f in BANDS}
FLAGS = (
    "competitor_purchase",
    "consent_email",
    "consent_sms",
    "consent_ads",
    "is_kol",
    "tag_high_value",
    "tag_price_sensitive",
)
SKIP = {"community_id", "social_role", "customer_id", "event_timestamp"}
UNKNOWN = "unknown"


def attributes(frame: pd.DataFrame) -> pd.DataFrame:
    """One categorical column per attribute that insight can describe (strings; missing = 'unknown')."""
    out = {}
    for c in frame.columns:
        if c in SKIP:
            continue
        s = frame[c]
        if c in BANDS:
            edges, labels = BANDS[c]
            out[BAND_NAMES[c]] = pd.cut(s.astype(float), edges, labels=labels, right=False)
        elif c in FLAGS:
            out[c] = s.map({1.0: "yes", 0.0: "no"})
        elif pd.api.types.is_string_dtype(s) or s.dtype == object:
            out[c] = s
    attrs = pd.DataFrame(out, index=frame.index)
    return attrs.astype("string").fillna(UNKNOWN)


@dataclass(frozen=True)
class Lift:
    attribute: str
    value: str
    audience_count: int
    audience_share: float
    population_count: int
    population_share: float
    lift: float
    lift_low: float
    lift_high: float

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _lift(attribute: str, value: str, a: int, n_a: int, b: int, n_b: int) -> Lift:
    share_a, share_b = a / n_a, b / n_b
    lift = share_a / share_b if share_b else float("inf")
    if a and b:
        se = np.sqrt(1 / a - 1 / n_a + 1 / b - 1 / n_b)
        low, high = float(lift * np.exp(-1.96 * se)), float(lift * np.exp(1.96 * se))
    else:
        low, high = 0.0, float("inf")
    return Lift(attribute, value, a, share_a, b, share_b, float(lift), low, high)


def distinguishing(
    attrs: pd.DataFrame, members: np.ndarray, base: np.ndarray | None = None, *, top: int = 10, min_count: int = 10
) -> list[Lift]:
    """Attribute values most over- or under-represented among `members` (row numbers) vs `base` (default: all),
    keeping those whose 95 % interval excludes 1, by how far the interval's near end is from 1 (log scale)."""
    base_rows = np.arange(len(attrs)) if base is None else base
    found = []
    for col in attrs.columns:
        a_counts = attrs[col].iloc[members].value_counts()
        b_counts = attrs[col].iloc[base_rows].value_counts()
        for value, b in b_counts.items():
            if value == UNKNOWN:
                continue
            a = int(a_counts.get(value, 0))
            if max(a, b * len(members) / len(base_rows)) < min_count:
                continue
            lift = _lift(col, str(value), a, len(members), int(b), len(base_rows))
            if lift.lift_low > 1 or lift.lift_high < 1:
                found.append(lift)
    strength = lambda x: np.log(x.lift_low) if x.lift_low > 1 else -np.log(x.lift_high)  # noqa: E731
    return sorted(found, key=strength, reverse=True)[:top]


def cross(attrs: pd.DataFrame, members: np.ndarray, first: str, second: str) -> list[dict]:
    """Every pair of values of two attributes: audience count and share, population share, lift."""
    for name in (first, second):
        if name not in attrs:
            raise KeyError(name)
    pair = attrs[first] + "\x1f" + attrs[second]
    a_counts, b_counts = pair.iloc[members].value_counts(), pair.value_counts()
    cells = []
    for key, b in b_counts.items():
        v1, v2 = key.split("\x1f")
        lift = _lift(f"{first}×{second}", key, int(a_counts.get(key, 0)), len(members), int(b), len(attrs))
        cells.append(
            {
                first: v1,
                second: v2,
                "audience_count": lift.audience_count,
                "audience_share": round(lift.audience_share, 4),
                "population_share": round(lift.population_share, 4),
                "lift": round(lift.lift, 4),
            }
        )
    return sorted(cells, key=lambda c: -c["audience_count"])


def overlap(attrs: pd.DataFrame, first: np.ndarray, second: np.ndarray, *, top: int = 5) -> dict:
    """Sizes, intersection and what the intersection adds: the values that set it apart from the first audience."""
    both = np.intersect1d(first, second)
    union = np.union1d(first, second)
    return {
        "size": len(first),
        "compare_size": len(second),
        "intersection": len(both),
        "union": len(union),
        "jaccard": round(len(both) / len(union), 4) if len(union) else 0.0,
        "share_of_audience": round(len(both) / len(first), 4) if len(first) else 0.0,
        "share_of_compare": round(len(both) / len(second), 4) if len(second) else 0.0,
        "intersection_vs_audience": [x.as_dict() for x in distinguishing(attrs, both, first, top=top)]
        if len(both)
        else [],
    }
