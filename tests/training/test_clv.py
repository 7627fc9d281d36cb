"""BG/NBD and Gamma-Gamma recover the parameters of data simulated from the models themselves."""

from __future__ import annotations

import numpy as np
import pytest

from training.clv import BGNBD, GammaGamma


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(30, 60, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T[i]:
                break
            x[i], t_x[i] = x[i] + 1, t
            if rng.random() < p[i]:
                break
    return x, t_x, T


def test_bgnbd_recovers_known_parameters() -> None:
    true = dict(r=0.25, alpha=4.0, a=0.8, b=2.5)
    x, t_x, T = simulate_bgnbd(6000, **true)
    m = BGNBD().fit(x, t_x, T)
    assert m.r_ == pytest.approx(true["r"], rel=0.2) and m.alpha_ == pytest.approx(true["alpha"], rel=0.3)
    assert m.a_ == pytest.approx(true["a"], rel=0.35) and m.b_ == pytest.approx(true["b"], rel=0.45)
    # more past purchases, recently, mean more expected purchases
    e = m.expected_purchases(10.0, np.array([0, 5, 5]), np.array([0, 40, 10]), np.array([50, 50, 50]))
    assert e[1] > e[2] > 0 and e[1] > e[0] > 0


def test_gamma_gamma_recovers_known_parameters() -> None:
    rng = np.random.default_rng(1)
    p, q, g = 6.0, 4.0, 15.0
    nu = rng.gamma(q, 1 / g, 20_000)
    freq = rng.integers(1, 10, 20_000)
    monetary = np.array([rng.gamma(p, 1 / v, k).mean() for v, k in zip(nu, freq, strict=True)])
    m = GammaGamma().fit(freq, monetary)
    assert m.p_ == pytest.approx(p, rel=0.25) and m.q_ == pytest.approx(q, rel=0.25)
    assert m.gamma_ == pytest.approx(g, rel=0.35)
    population_mean = p * g / (q - 1)
    assert m.expected_order_value(np.array([0]), np.array([0.0]))[0] == pytest.approx(population_mean, rel=0.2)
