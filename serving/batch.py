"""Score items as a flat table (one row per customer) for files: parquet/CSV from `leadscope score`."""

from __future__ import annotations

import pandas as pd

from leadscope.schema import SCORED_MODELS
from serving.schemas import ScoreItem
from serving.scoring import TOP_REASONS


def flatten(items: list[ScoreItem], names: list[str]) -> pd.DataFrame:
    """customer_id, error, then per model: probability, score, grade and reason_1..3 (feature names), or for
    value the expected spend per horizon."""
    rows = []
    for it in items:
        row: dict = {"customer_id": it.customer_id, "error": it.error.code if it.error else None}
        for m in names:
            out = getattr(it, m) if m in SCORED_MODELS else (it.outcomes or {}).get(m)
            if m == "value":
                row["value_expected_spend_90d"] = out.expected_spend_90d if out else None
                row["value_expected_spend_365d"] = out.expected_spend_365d if out else None
                for h, v in (out.expected_spend if out else {}).items():
                    if h not in ("90d", "365d"):
                        row[f"value_expected_spend_{h}"] = v
                for h, v in (out.expected_orders if out else {}).items():
                    row[f"value_expected_orders_{h}"] = v
                continue
            row[f"{m}_probability"] = out.probability if out else None
            row[f"{m}_score"] = out.score if out else None
            row[f"{m}_grade"] = out.grade if out else None
            for k in range(TOP_REASONS):
                row[f"{m}_reason_{k + 1}"] = out.reasons[k].feature if out and k < len(out.reasons) else None
        rows.append(row)
    return pd.DataFrame(rows)
