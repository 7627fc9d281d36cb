"""Audience quality against the generator's hidden lookalike segment (the oracle knows who is in it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training import lookalike
from training.lookalike import Population, build, candidate_mask, centroid_baseline


@dataclass(frozen=True)
class Quality:
    k: int
    segment_candidates: int
    ours_precision: float
    ours_recall: float
    oracle_precision: float
    oracle_recall: float
    baseline_precision: float
    baseline_recall: float
    ceiling_precision: float | None = None  # a classifier trained on everyone's true membership (cross-fitted)

    @property
    def vs_oracle(self) -> float:
        return self.ours_precision / self.oracle_precision

    @property
    def vs_baseline(self) -> float:
        return self.ours_precision / max(self.baseline_precision, 1e-9)


def segment_of(pop: Population, truth_customers: pd.DataFrame) -> np.ndarray:
    return truth_customers.set_index("customer_id")["segment"].reindex(pop.ids).fillna(False).to_numpy(bool)


def seed_from_segment(segment: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A marketer's seed: a random share of the segment's members (its best-known customers, say)."""
    members = np.flatnonzero(segment)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(members, int(round(share * len(members))), replace=False))


def supervised_ceiling(pop: Population, segment: np.ndarray, folds: int = 5, threads: int = 1) -> np.ndarray:
    """Out-of-fold P(in segment) from LightGBM trained on the true membership of everyone: how well these
    features can separate the segment at all, what no seed-only method can beat on average."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    fold = rng.integers(0, folds, len(pop))
    out = np.zeros(len(pop))
    params = {**lookalike.PU_PARAMS, "num_leaves": 15, "lambda_l2": 1.0, "num_threads": threads, "seed": 0}
    for f in range(folds):
        train = fold != f
        data = lgb.Dataset(pop.X[train], segment[train], categorical_feature=pop.encoder.categorical_indices)
        out[~train] = lgb.train(params, data, 300).predict(pop.X[~train], num_threads=threads)
    return out


def evaluate(
    pop: Population,
    segment: np.ndarray,
    seed_rows: np.ndarray,
    ks: list[int],
    *,
    threads: int = 1,
    ceiling: np.ndarray | None = None,
) -> list[Quality]:
    """precision@k / recall@k of our audience, the oracle (the true segment first) and the centroid baseline,
    for audiences of each size k drawn from everyone outside the seed."""
    cand = np.flatnonzero(candidate_mask(pop, seed_rows, ("seed",)))
    positives = int(segment[cand].sum())
    out = []
    for k in ks:
        ours = build(pop, seed_rows, k, ("seed",), random_state=k, threads=threads).members
        base = centroid_baseline(pop.X, seed_rows, cand, k)
        oracle_hits = min(k, positives)
        top = cand[np.argsort(-ceiling[cand], kind="stable")[:k]] if ceiling is not None else None
        hits, base_hits = int(segment[ours].sum()), int(segment[base].sum())
        out.append(
            Quality(
                k=k,
                segment_candidates=positives,
                ours_precision=hits / k,
                ours_recall=hits / positives,
                oracle_precision=oracle_hits / k,
                oracle_recall=oracle_hits / positives,
                baseline_precision=base_hits / k,
                baseline_recall=base_hits / positives,
                ceiling_precision=None if top is None else float(segment[top].mean()),
            )
        )
    return out
