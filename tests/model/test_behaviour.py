"""Behavioural tests of the trained propensity model on real rows (not on synthetic toy inputs)."""

from __future__ import annotations

import itertools

import numpy as np

from features import store
from training import dataset, tracking
from training.propensity import MONOTONE


def _rows(prepared):
    settings = prepared.settings
    champ = tracking.load_champion(settings, "propensity")
    labels = dataset.conversion_labels(settings, horizon_days=30).sample(400, random_state=0)
    df = dataset.historical_features(store.open_store(settings), labels, service="propensity_v2")
    return champ.model, df


def test_more_buying_signals_never_lower_propensity(prepared) -> None:
    # broken: a lead who visits pricing or calls us could be graded down for it
    scorer, df = _rows(prepared)
    base = scorer.probability(scorer.encoder.transform(df))
    for (feature, direction), step in itertools.product(MONOTONE.items(), (1, 3, 10)):
        bumped = df.copy()
        bumped[feature] = bumped[feature] + step * direction
        if direction < 0:
            bumped[feature] = bumped[feature].clip(lower=0)
        p = scorer.probability(scorer.encoder.transform(bumped))
        assert (p >= base - 1e-12).all(), feature  # moved in the buying direction: never a lower score


def test_reasons_sum_to_the_margin(prepared) -> None:
    # broken: the "why" shown to sales would not explain the score shown next to it
    scorer, df = _rows(prepared)
    X = scorer.encoder.transform(df)
    contrib = scorer.contributions(X)
    np.testing.assert_allclose(contrib.sum(axis=1), scorer.margin(X), rtol=1e-6, atol=1e-6)
    p, shap = scorer.explain(X)
    np.testing.assert_allclose(p, scorer.probability(X))
