"""Turn online feature rows into scored items with reasons (numpy on the hot path)."""

from __future__ import annotations

import math

import numpy as np

from features.catalog import describe
from serving.schemas import ItemError, Propensity, Reason, ScoreItem
from training.scorer import Scorer

TOP_REASONS = 3


def score_rows(scorer: Scorer, ids: list[str], columns: dict[str, list]) -> list[ScoreItem]:
    """One item per id, in order; ids the store does not know get a per-item error."""
    feats = scorer.encoder.features
    known = [any(columns[f][i] is not None for f in feats) for i in range(len(ids))]
    rows = [i for i, k in enumerate(known) if k]
    items: list[ScoreItem | None] = [None] * len(ids)
    if rows:
        sub = {f: [columns[f][i] for i in rows] for f in feats}
        X = scorer.encoder.transform_columns(sub)
        p, contrib = scorer.explain(X)
        score = scorer.score(p)
        grade = scorer.grade(score)
        for j, i in enumerate(rows):
            items[i] = ScoreItem(
                customer_id=ids[i],
                propensity=Propensity(
                    probability=round(float(p[j]), 6),
                    score=int(score[j]),
                    grade=grade[j],
                    reasons=_reasons(feats, contrib[j], sub, j),
                ),
            )
    for i, k in enumerate(known):
        if not k:
            items[i] = ScoreItem(
                customer_id=ids[i],
                error=ItemError(
                    code="unknown_customer", message="no features for this customer_id in the online store"
                ),
            )
    return [it for it in items if it is not None]


def _reasons(feats: list[str], contrib: np.ndarray, sub: dict[str, list], j: int) -> list[Reason]:
    top = np.argsort(-np.abs(contrib), kind="stable")[:TOP_REASONS]
    out = []
    for k in top:
        info = describe(feats[k])
        v = sub[feats[k]][j]
        if isinstance(v, float):
            v = None if math.isnan(v) else round(v, 4)
        out.append(Reason(feature=feats[k], label=info.label, value=v, impact=round(float(contrib[k]), 4)))
    return out
