"""LightGBM binary classifier with Platt calibration, following the scikit-learn fit/predict contract."""

from __future__ import annotations

from collections.abc import Callable

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from training.scorer import Encoder, Scorer

DEFAULT_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 8,
    "max_depth": 4,
    "min_data_in_leaf": 80,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 5.0,
    "verbosity": -1,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
}


class CalibratedLGBMClassifier:
    """fit on a training frame, early-stop and calibrate on a later validation frame; `scorer_` serves."""

    def __init__(
        self,
        *,
        params: dict | None = None,
        monotone: dict[str, int] | None = None,
        max_rounds: int = 250,
        early_stopping: int = 50,
        seed: int = 42,
        boost: Callable[..., tuple[lgb.Booster, int]] | None = None,
    ) -> None:
        self.boost = boost  # another executor of the boosting step (training/distributed.py RayBoost)
        self.params = params
        self.monotone = monotone
        self.max_rounds = max_rounds
        self.early_stopping = early_stopping
        self.seed = seed

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        *,
        X_valid: pd.DataFrame,
        y_valid: np.ndarray,
        features: list[str],
        weight: np.ndarray | None = None,
    ) -> CalibratedLGBMClassifier:
        """`weight`: per training row (sampled negatives weigh the inverse of their share; None: all 1)."""
        encoder = Encoder.fit(X, features)
        params = {**DEFAULT_PARAMS, **(self.params or {}), "seed": self.seed}
        if self.monotone:
            # domain knowledge the model may not contradict (e.g. more pricing visits never lower the score)
            params["monotone_constraints"] = [self.monotone.get(f, 0) for f in features]
            params["monotone_constraints_method"] = "intermediate"
        if self.boost is not None:
            booster, best = self.boost(
                params,
                encoder.transform(X),
                np.asarray(y),
                None if weight is None else np.asarray(weight, dtype=float),
                encoder.transform(X_valid),
                np.asarray(y_valid),
                features=features,
                categorical=list(encoder.categorical_indices),
                rounds=self.max_rounds,
                early_stopping=self.early_stopping,
            )
        else:
            train = lgb.Dataset(
                encoder.transform(X),
                label=y,
                weight=weight,
                feature_name=features,
                categorical_feature=encoder.categorical_indices,
                free_raw_data=False,
            )
            valid = lgb.Dataset(encoder.transform(X_valid), label=y_valid, reference=train)
            booster = lgb.train(
                params,
                train,
                num_boost_round=self.max_rounds,
                valid_sets=[valid],
                callbacks=[lgb.early_stopping(self.early_stopping, verbose=False)],
            )
            best = booster.best_iteration
        margin_valid = booster.predict(encoder.transform(X_valid), raw_score=True, num_threads=1)
        # Platt scaling (sklearn's logistic regression on the margin): keeps the ranking, fixes the scale
        lr = LogisticRegression(C=1e6).fit(margin_valid.reshape(-1, 1), y_valid)
        self.scorer_ = Scorer(
            booster=booster, encoder=encoder, platt=(float(lr.coef_[0, 0]), float(lr.intercept_[0])), reference=[]
        )
        p_valid = self.scorer_.probability(encoder.transform(X_valid))
        self.scorer_.reference = np.quantile(p_valid, np.linspace(0, 1, 101)).tolist()
        self.best_iteration_ = best
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.scorer_.probability(self.scorer_.encoder.transform(X))
        return np.column_stack([1 - p, p])

    def explain(self, X: pd.DataFrame) -> np.ndarray:
        return self.scorer_.contributions(self.scorer_.encoder.transform(X))
