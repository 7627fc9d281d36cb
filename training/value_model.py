"""The served value model: one encoder, one LightGBM booster per horizon, TreeSHAP reasons from the 90-day one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

from training.scorer import Encoder


@dataclass
class ValueModel:
    encoder: Encoder
    boosters: dict[int, lgb.Booster]  # horizon in days → booster predicting net spend

    def predict(self, X: np.ndarray) -> dict[int, np.ndarray]:
        return {h: np.maximum(b.predict(X, num_threads=1), 0.0) for h, b in self.boosters.items()}

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions (log scale of the Tweedie model) of the shortest horizon."""
        return self.boosters[min(self.boosters)].predict(X, pred_contrib=True, num_threads=1)[:, :-1]

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for h, b in self.boosters.items():
            b.save_model(str(path / f"booster_{h}d.txt"))
        meta = {
            "features": self.encoder.features,
            "categories": self.encoder.categories,
            "horizons": list(self.boosters),
        }
        (path / "value.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: Path) -> ValueModel:
        meta = json.loads((path / "value.json").read_text())
        boosters = {h: lgb.Booster(model_file=str(path / f"booster_{h}d.txt")) for h in meta["horizons"]}
        return cls(Encoder(meta["features"], meta["categories"]), boosters)


class ValuePyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc face: DataFrame of features in, expected spend per horizon out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = ValueModel.load(Path(context.artifacts["value"]))

    def predict(self, context: object, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        pred = self.model.predict(self.model.encoder.transform(model_input))
        return pd.DataFrame({f"expected_spend_{h}d": v for h, v in pred.items()})
