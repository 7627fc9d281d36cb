"""BG/NBD (purchase count) + Gamma-Gamma (order value): the classic probabilistic customer-value model.

Written here as a small maximum-likelihood fit (Fader, Hardie & Lee 2005) because `lifetimes` is no longer
maintained (and breaks on current pandas/scipy) and pymc-marketing's CLV module pulls in PyMC/PyTensor, a
compiler toolchain and minutes of start-up for four parameters. Tests recover known parameters from data
simulated by the model itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1


def _bgnbd_nll(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> float:
    r, alpha, a, b = np.exp(log_params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return -float(np.sum(a1 + a2 + np.logaddexp(a3, a4)))


@dataclass
class BGNBD:
    """r, alpha: purchase-rate heterogeneity; a, b: dropout heterogeneity (time unit of the inputs)."""

    penalizer: float = 0.0

    def fit(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BGNBD:
        x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))

        def objective(lp: np.ndarray) -> float:
            return _bgnbd_nll(lp, x, t_x, T) / len(x) + self.penalizer * float(np.sum(np.exp(lp) ** 2))

        res = minimize(
            objective,
            x0=np.log([0.5, max(T.mean(), 1.0), 1.0, 1.0]),
            method="Nelder-Mead",
            options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-9},
        )
        self.r_, self.alpha_, self.a_, self.b_ = np.exp(res.x)
        self.converged_ = bool(res.success)
        return self

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """E[number of purchases in (T, T+t] | x, t_x, T]."""
        r, alpha, a, b = self.r_, self.alpha_, self.a_, self.b_
        x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
        z = t / (alpha + T + t)
        head = (a + b + x - 1) / (a - 1)
        body = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        denom = 1 + np.where(x > 0, (a / np.maximum(b + x - 1, 1e-12)) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0)
        return head * body / denom


@dataclass
class GammaGamma:
    """Spend per order: p, q, gamma (customers with at least one repeat order inform the fit)."""

    def fit(self, frequency: np.ndarray, monetary: np.ndarray) -> GammaGamma:
        f, m = np.asarray(frequency, float), np.asarray(monetary, float)
        keep = (f > 0) & (m > 0)
        f, m = f[keep], m[keep]

        def nll(lp: np.ndarray) -> float:
            p, q, g = np.exp(lp)
            ll = (
                gammaln(p * f + q)
                - gammaln(p * f)
                - gammaln(q)
                + q * np.log(g)
                + (p * f - 1) * np.log(m)
                + p * f * np.log(f)
                - (p * f + q) * np.log(f * m + g)
            )
            return -float(np.mean(ll))

        res = minimize(
            nll,
            x0=np.log([1.0, 2.0, max(np.median(m), 1.0)]),
            method="Nelder-Mead",
            options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-9},
        )
        self.p_, self.q_, self.gamma_ = np.exp(res.x)
        return self

    def expected_order_value(self, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
        f, m = np.asarray(frequency, float), np.nan_to_num(np.asarray(monetary, float))
        p, q, g = self.p_, self.q_, self.gamma_
        return (p * (g + f * m)) / (p * f + q - 1)
