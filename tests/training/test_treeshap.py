"""TreeSHAP from precomputed tables (training/treeshap.py) gives LightGBM's own contributions, exactly, on every
kind of split LightGBM makes (numerical with each missing type, categorical, values LightGBM reads as zero); a
model the tables cannot express (bigger trees, no split at all) keeps LightGBM's walk."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from training import treeshap
from training.scorer import Encoder, Scorer


def _data(n: int = 3_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.normal(size=n),
            rng.exponential(size=n) * (rng.random(n) < 0.6),  # many exact zeros
            rng.integers(0, 6, n).astype(float),  # a category
            rng.integers(0, 40, n).astype(float),  # a count
            rng.normal(size=n),
        ]
    )
    X[rng.random((n, 5)) < 0.08] = np.nan
    logit = X[:, 0] + 0.8 * np.nan_to_num(X[:, 1]) - 0.6 * (X[:, 2] == 3) + 0.03 * np.nan_to_num(X[:, 3])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _train(**params: object) -> lgb.Booster:
    X, y = _data()
    base = {"objective": "binary", "num_leaves": 8, "verbosity": -1, "num_threads": 1, "seed": 0}
    base["min_data_in_leaf"] = 20
    cats = params.pop("categorical", [2])
    rounds = params.pop("rounds", 60)
    return lgb.train({**base, **params}, lgb.Dataset(X, y, categorical_feature=cats), num_boost_round=rounds)


@pytest.mark.parametrize(
    "params",
    [
        {},  # NaN as missing, a categorical feature
        {"zero_as_missing": True},  # missing type Zero
        {"use_missing": False},  # missing type None: NaN is read as 0.0
        {"categorical": [], "num_leaves": 2},  # stumps
        {"objective": "regression", "num_leaves": 6},
        {"num_leaves": 11, "categorical": [2, 3]},  # ten splits: the largest trees the tables take
    ],
    ids=["nan-missing", "zero-missing", "no-missing", "stumps", "regression", "ten-splits"],
)
def test_the_tables_give_lightgbms_contributions(params: dict) -> None:
    booster = _train(**params)
    tables = treeshap.build(booster)
    X, _ = _data(seed=1)
    for rows in (treeshap.probe(booster, 2_000, seed=3), X, X[:1], X[:7]):
        want = booster.predict(rows, pred_contrib=True, num_threads=1)
        got = tables.contributions(rows)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_a_model_that_never_splits_keeps_lightgbms_walk() -> None:
    # min_data_in_leaf above the rows: no tree can split; nothing to tabulate, and the answer is still LightGBM's
    booster = _train(min_data_in_leaf=10_000, rounds=3)
    assert treeshap.tables_for(booster) is None
    X, _ = _data(seed=2)
    scorer = Scorer(booster=booster, encoder=Encoder([f"f{i}" for i in range(5)]), platt=(1.0, 0.0), reference=[])
    np.testing.assert_allclose(scorer.contributions(X), booster.predict(X, pred_contrib=True), rtol=1e-9, atol=1e-9)


def test_bigger_trees_keep_lightgbms_walk_and_the_scorer_answers_the_same() -> None:
    big = _train(num_leaves=31, min_data_in_leaf=5)
    with pytest.raises(treeshap.Unsupported):
        treeshap.build(big)
    assert treeshap.tables_for(big) is None
    X, _ = _data(seed=4)
    for booster, tabled in ((big, False), (_train(), True)):
        scorer = Scorer(booster=booster, encoder=Encoder([f"f{i}" for i in range(5)]), platt=(1.0, 0.0), reference=[])
        assert (scorer.shap_tables() is not None) is tabled
        np.testing.assert_allclose(scorer.contributions(X), booster.predict(X, pred_contrib=True), rtol=1e-9, atol=1e-9)


def test_many_rows_go_through_in_chunks_with_the_same_contributions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole holdout explained at once (training/pipeline.py's plots) is split into chunks of rows; the values
    are LightGBM's as before (broken: rows lost or repeated at a chunk's edge, or one array of rows × trees ×
    slots again, 14.9 GiB at 200,000 customers)."""
    booster = _train()
    tables = treeshap.build(booster)
    X, _ = _data(n=1_001, seed=3)
    monkeypatch.setattr(treeshap, "CHUNK_CELLS", 60 * 8 * 97)  # about 97 rows a chunk: 11 chunks, the last short
    got = tables.contributions(X)
    assert got.shape == (1_001, 6)
    np.testing.assert_allclose(got, booster.predict(X, pred_contrib=True), atol=1e-9, rtol=1e-9)
