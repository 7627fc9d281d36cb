"""A fairness summary of a model's holdout per attribute (an excluded field, or one named with --fairness-by):
score distribution and calibration by group, logged with the run as `fairness/<attribute>.csv`.

Written here rather than with fairlearn's MetricFrame: that adds a dependency for a group-by of five columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

MAX_GROUPS = 12  # the most frequent values of a categorical attribute; the rest are `other`


def groups_of(values: pd.Series) -> pd.Series:
    """Quartiles of a numeric attribute, the most frequent values of any other; missing is its own group."""
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > MAX_GROUPS:
        binned = pd.qcut(values, 4, duplicates="drop").astype(str)
    else:
        text = values.astype("string")
        top = text.value_counts().index[:MAX_GROUPS]
        binned = text.where(text.isin(top) | text.isna(), "other").astype(object)
    return pd.Series(binned, index=values.index).where(values.notna(), "missing").astype(str)


def by_group(values: pd.Series, y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Per group: rows, mean and quartiles of the score, the observed rate, the calibration gap (mean score −
    observed rate) and the ROC-AUC within the group where it has both outcomes."""
    g = groups_of(values.reset_index(drop=True))
    rows = []
    for name, idx in g.groupby(g).groups.items():
        yi, pi = y[idx], p[idx]
        rows.append(
            {
                "group": name,
                "rows": len(idx),
                "mean_score": float(pi.mean()),
                "score_p25": float(np.quantile(pi, 0.25)),
                "score_p75": float(np.quantile(pi, 0.75)),
                "observed_rate": float(yi.mean()),
                "calibration_gap": float(pi.mean() - yi.mean()),
                "roc_auc": float(roc_auc_score(yi, pi)) if 0 < yi.sum() < len(yi) else float("nan"),
            }
        )
    return pd.DataFrame(rows).sort_values("rows", ascending=False, ignore_index=True)
