"""The served value model: one encoder, per horizon the method that won on the holdout (LightGBM or BG/NBD +
Gamma-Gamma), expected repeat orders from BG/NBD, and TreeSHAP reasons from the shortest horizon's booster.

BG/NBD needs each customer's repeat orders, purchase span and age as a buyer: these come from the same online
features every other model reads (`rfm`), so what training evaluated is what serving computes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

from training.clv import BGNBD, GammaGamma
from training.scorer import Encoder

WEEK = 7.0
LIGHTGBM, BGNBD_GG = "lightgbm", "bgnbd_gamma_gamma"
RFM_FEATURES = ("tx_count_total", "tx_recency_days", "tx_days_between_orders", "tx_avg_order_value")


def rfm(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """BG/NBD inputs in weeks from the transaction features: repeat orders x = orders − 1, span t_x = days between
    orders × x, age as a buyer T = days since the last order + t_x; spend per order. NaN for non-buyers."""
    n = np.asarray(columns["tx_count_total"], float)
    x = np.where(n >= 1, n - 1, np.nan)
    span = np.where(x > 0, np.nan_to_num(np.asarray(columns["tx_days_between_orders"], float)) * x, 0.0)
    recency = np.asarray(columns["tx_recency_days"], float)
    return pd.DataFrame(
        {
            "x": x,
            "t_x": span / WEEK,
            "T": (recency + span) / WEEK,
            "monetary": np.asarray(columns["tx_avg_order_value"], float),
        }
    )


@dataclass
class Clv:
    """Fitted BG/NBD + Gamma-Gamma parameters, applied to `rfm` of any rows."""

    bgnbd: list[float]  # r, alpha, a, b
    gamma_gamma: list[float]  # p, q, gamma

    @classmethod
    def fit(cls, r: pd.DataFrame) -> Clv:
        ok = r["x"].notna() & r["T"].gt(0)
        bg = BGNBD(penalizer=0.001).fit(r["x"][ok], r["t_x"][ok], r["T"][ok])
        gg = GammaGamma().fit(r["x"][ok], r["monetary"][ok])
        return cls([bg.r_, bg.alpha_, bg.a_, bg.b_], [gg.p_, gg.q_, gg.gamma_])

    def _models(self) -> tuple[BGNBD, GammaGamma]:
        bg, gg = BGNBD(), GammaGamma()
        bg.r_, bg.alpha_, bg.a_, bg.b_ = self.bgnbd
        gg.p_, gg.q_, gg.gamma_ = self.gamma_gamma
        return bg, gg

    def orders(self, r: pd.DataFrame, horizon_days: int) -> np.ndarray:
        bg, _ = self._models()
        ok = r["x"].notna().to_numpy() & (r["T"].to_numpy() > 0)
        out = np.zeros(len(r))
        if ok.any():
            out[ok] = bg.expected_purchases(horizon_days / WEEK, r["x"][ok], r["t_x"][ok], r["T"][ok])
        return out

    def spend(self, r: pd.DataFrame, horizon_days: int) -> np.ndarray:
        _, gg = self._models()
        value = np.nan_to_num(gg.expected_order_value(r["x"].fillna(0), r["monetary"].fillna(0)))
        return np.maximum(self.orders(r, horizon_days) * value, 0.0)


@dataclass
class ValueModel:
    encoder: Encoder
    boosters: dict[int, lgb.Booster]  # horizon in days → booster predicting net spend
    methods: dict[int, str] = field(default_factory=dict)  # horizon → the method that serves it (LightGBM default)
    clv: Clv | None = None

    @property
    def horizons(self) -> list[int]:
        return sorted(self.boosters)

    def _rfm(self, X: np.ndarray) -> pd.DataFrame:
        feats = self.encoder.features
        return rfm({f: X[:, feats.index(f)] for f in RFM_FEATURES})

    def predict(self, X: np.ndarray) -> dict[int, np.ndarray]:
        out, r = {}, None
        for h, b in sorted(self.boosters.items()):
            if self.methods.get(h, LIGHTGBM) == BGNBD_GG and self.clv is not None:
                r = self._rfm(X) if r is None else r
                out[h] = self.clv.spend(r, h)
            else:
                out[h] = np.maximum(b.predict(X, num_threads=1), 0.0)
        return out

    def expected_orders(self, X: np.ndarray) -> dict[int, np.ndarray]:
        """Expected repeat orders per horizon (BG/NBD); empty without a fitted BG/NBD."""
        if self.clv is None:
            return {}
        r = self._rfm(X)
        return {h: self.clv.orders(r, h) for h in self.horizons}

    def frame(self, X: np.ndarray) -> pd.DataFrame:
        """expected_spend_{h}d and expected_orders_{h}d columns."""
        out = {f"expected_spend_{h}d": v for h, v in self.predict(X).items()}
        return pd.DataFrame(out | {f"expected_orders_{h}d": v for h, v in self.expected_orders(X).items()})

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions (log scale of the Tweedie model) of the shortest horizon's booster."""
        return self.boosters[min(self.boosters)].predict(X, pred_contrib=True, num_threads=1)[:, :-1]

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for h, b in self.boosters.items():
            b.save_model(str(path / f"booster_{h}d.txt"))
        meta = {
            "features": self.encoder.features,
            "categories": self.encoder.categories,
            "horizons": list(self.boosters),
            "methods": {str(h): m for h, m in self.methods.items()},
            "clv": None if self.clv is None else {"bgnbd": self.clv.bgnbd, "gamma_gamma": self.clv.gamma_gamma},
        }
        (path / "value.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: Path) -> ValueModel:
        meta = json.loads((path / "value.json").read_text())
        boosters = {h: lgb.Booster(model_file=str(path / f"booster_{h}d.txt")) for h in meta["horizons"]}
        methods = {int(h): m for h, m in meta.get("methods", {}).items()}
        clv = Clv(**meta["clv"]) if meta.get("clv") else None
        return cls(Encoder(meta["features"], meta["categories"]), boosters, methods, clv)


class ValuePyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc face: DataFrame of features in, expected spend (and repeat orders) per horizon out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = ValueModel.load(Path(context.artifacts["value"]))

    def predict(self, context: object, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.model.frame(self.model.encoder.transform(model_input))
