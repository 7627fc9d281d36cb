"""The synthetic world's clock: day offsets, seasonality and the integrated lead-hazard curve."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

LEAD_COOLING_DAYS = 120.0  # a lead's hazard and engagement halve roughly every 83 days


@dataclass(frozen=True)
class World:
    """Time axis in days from `start`; `G` integrates seasonality × lead cooling on a daily grid."""

    start: datetime
    days: int
    horizon_pad: int = 400  # the grid extends past the end so future windows can be integrated

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    @property
    def grid(self) -> np.ndarray:
        return np.arange(self.days + self.horizon_pad + 1, dtype=float)

    def season(self, t: np.ndarray) -> np.ndarray:
        """Yearly cycle (peak in late autumn) plus a weekday effect: channels are busier on weekdays."""
        yearly = 1.0 + 0.3 * np.sin(2 * np.pi * (t / 365.0) + 4.0)
        weekly = 1.0 - 0.25 * (np.floor(t) % 7 >= 5)
        return yearly * weekly

    @property
    def G(self) -> np.ndarray:
        """∫ season(u)·exp(-u/τ) du from 0 to each grid day: the cooling-lead intensity."""
        return self.cumulative(cooling=True)

    def cumulative(self, *, cooling: bool) -> np.ndarray:
        """Trapezoid integral on the daily grid of season(u), times exp(-u/τ) when `cooling`."""
        g = self.grid
        f = self.season(g) * (np.exp(-g / LEAD_COOLING_DAYS) if cooling else 1.0)
        return np.concatenate([[0.0], np.cumsum((f[1:] + f[:-1]) / 2.0)])

    def integral(self, a: np.ndarray, b: np.ndarray, G: np.ndarray | None = None) -> np.ndarray:
        G = self.G if G is None else G
        return np.interp(b, self.grid, G) - np.interp(a, self.grid, G)

    def invert(self, level: np.ndarray, G: np.ndarray | None = None) -> np.ndarray:
        """Day t with G(t) = level (G is increasing); levels past the grid map to +inf."""
        G = self.G if G is None else G
        out = np.interp(level, G, self.grid)
        return np.where(level >= G[-1], np.inf, out)

    def to_ts(self, days: np.ndarray) -> pd.Series:
        base = pd.Timestamp(self.start)
        return base + pd.to_timedelta(np.round(np.asarray(days) * 86400.0), unit="s")

    def to_days(self, ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
        delta = pd.to_datetime(ts, utc=True) - pd.Timestamp(self.start)
        secs = delta.dt.total_seconds() if isinstance(delta, pd.Series) else delta.total_seconds()
        return np.asarray(secs, dtype=float) / 86400.0
