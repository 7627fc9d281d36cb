"""Holdout metrics for a binary scorer, and the oracle's AUC on the same rows."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def lift_at(y: np.ndarray, p: np.ndarray, top: float = 0.1) -> float:
    """Positive rate in the top `top` share by score, over the overall positive rate."""
    k = max(1, int(round(len(p) * top)))
    best = np.argsort(-p, kind="stable")[:k]
    return float(y[best].mean() / max(y.mean(), 1e-12))


def binary_metrics(y: np.ndarray, p: np.ndarray, oracle: np.ndarray | None = None) -> dict[str, float]:
    out = {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7))),
        "brier": float(brier_score_loss(y, p)),
        "lift_top_decile": lift_at(y, p),
        "positive_rate": float(y.mean()),
        "rows": float(len(y)),
    }
    if oracle is not None and np.isfinite(oracle).all():
        out["oracle_roc_auc"] = float(roc_auc_score(y, oracle))
        out["oracle_pr_auc"] = float(average_precision_score(y, oracle))
        out["auc_vs_oracle"] = out["roc_auc"] / out["oracle_roc_auc"]
    return out
