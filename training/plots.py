"""Pictures a data scientist looks at for a binary model: calibration, cumulative gains, SHAP summary,
feature importance. Each returns a matplotlib Figure (Agg backend, no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402


def calibration(y: np.ndarray, p: np.ndarray) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 4))
    frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
    ax.plot(mean, frac, "o-", label="model")
    lim = max(float(mean.max()), float(frac.max()))
    ax.plot([0, lim], [0, lim], "--", color="grey", label="perfect")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title="Calibration (holdout deciles)")
    ax.legend()
    return fig


def gains(y: np.ndarray, p: np.ndarray) -> Figure:
    order = np.argsort(-p, kind="stable")
    captured = np.cumsum(y[order]) / max(y.sum(), 1)
    share = np.arange(1, len(y) + 1) / len(y)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(share, captured, label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="random")
    ax.set(xlabel="share of rows contacted (by score)", ylabel="share of positives captured", title="Cumulative gains")
    ax.legend()
    return fig


def shap_summary(contrib: np.ndarray, features: list[str], top: int = 15) -> Figure:
    """Mean |TreeSHAP| per feature (the bar form of a SHAP summary)."""
    return _bars(np.abs(contrib).mean(axis=0), features, top, "mean |SHAP| (log-odds)", "SHAP summary (holdout)")


def importance(gain: np.ndarray, features: list[str], top: int = 15) -> Figure:
    return _bars(gain, features, top, "total gain", "Feature importance (LightGBM gain)")


def _bars(values: np.ndarray, features: list[str], top: int, xlabel: str, title: str) -> Figure:
    idx = np.argsort(values)[-top:]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(idx) + 1))
    ax.barh([features[i] for i in idx], values[idx])
    ax.set(xlabel=xlabel, title=title)
    fig.tight_layout()
    return fig
