"""Turn online feature rows into scored items with reasons (numpy on the hot path)."""

from __future__ import annotations

import math

import numpy as np

from features.catalog import describe
from features.engineering import NO_TOUCH
from serving import observability as obs
from serving.schemas import ItemError, Reason, Score, ScoreItem, ValueEstimate
from serving.state import ServingState
from training.scorer import Scorer

TOP_REASONS = 3
UNKNOWN = ItemError(code="unknown_customer", message="no features for this customer_id in the online store")


def score_rows(scorer: Scorer, columns: dict[str, list]) -> list[Score | None]:
    """One Score per row of the online response, in order; None where the store knows no feature."""
    feats = scorer.encoder.features
    n, rows, sub = _known(feats, columns)
    out: list[Score | None] = [None] * n
    if not rows:
        return out
    X = scorer.encoder.transform_columns(sub)
    p, contrib = scorer.explain(X)
    score = scorer.score(p)
    grade = scorer.grade(score)
    for j, i in enumerate(rows):
        out[i] = Score(
            probability=round(float(p[j]), 6),
            score=int(score[j]),
            grade=grade[j],
            reasons=_reasons(feats, contrib[j], sub, j),
        )
    return out


def value_rows(model: object, columns: dict[str, list]) -> list[ValueEstimate | None]:
    """Expected spend per row (LightGBM per horizon) with the 90-day model's top contributions."""
    feats = model.encoder.features
    n, rows, sub = _known(feats, columns)
    out: list[ValueEstimate | None] = [None] * n
    if not rows:
        return out
    X = model.encoder.transform_columns(sub)
    pred, contrib = model.predict(X), model.contributions(X)
    for j, i in enumerate(rows):
        out[i] = ValueEstimate(
            expected_spend_90d=round(float(pred[90][j]), 2),
            expected_spend_365d=round(float(pred[365][j]), 2),
            reasons=_reasons(feats, contrib[j], sub, j),
        )
    return out


def _known(feats: list[str], columns: dict[str, list]) -> tuple[int, list[int], dict[str, list]]:
    """(rows in the response, rows with any feature, their feature columns): all-missing rows are unknown ids."""
    n = len(next(iter(columns.values())))
    rows = [i for i in range(n) if any(columns[f][i] is not None for f in feats)]
    return n, rows, {f: [columns[f][i] for i in rows] for f in feats}


def _reasons(feats: list[str], contrib: np.ndarray, sub: dict[str, list], j: int) -> list[Reason]:
    top = np.argsort(-np.abs(contrib), kind="stable")[:TOP_REASONS]
    out = []
    for k in top:
        info = describe(feats[k])
        v = sub[feats[k]][j]
        if isinstance(v, float):
            v = None if math.isnan(v) or v == NO_TOUCH else round(v, 4)  # NO_TOUCH: never happened
        out.append(Reason(feature=feats[k], label=info.label, value=v, impact=round(float(contrib[k]), 4)))
    return out


def score_items(state: ServingState, names: list[str], ids: list[str]) -> list[ScoreItem]:
    """One ScoreItem per id, in order: each requested model's output, or an item error for unknown ids."""
    scored = {
        m: (value_rows if m == "value" else score_rows)(state.models[m].scorer, state.online(m, ids)) for m in names
    }
    items = []
    for i, cid in enumerate(ids):
        if all(scored[m][i] is None for m in names):
            obs.ITEM_ERRORS.labels(UNKNOWN.code).inc()
            items.append(ScoreItem(customer_id=cid, error=UNKNOWN))
            continue
        item = ScoreItem(customer_id=cid, **{m: scored[m][i] for m in names})
        for m in names:
            if m != "value" and scored[m][i] is not None:
                obs.SCORES.labels(m).observe(scored[m][i].probability)
        items.append(item)
    return items


def expected_values(state: ServingState, ids: list[str]) -> dict[str, float]:
    """P(convert) × expected 365-day spend per known id, without reasons (no TreeSHAP): the predicted value a
    conversion signal carries before the deal closes."""
    prop, value = state.models["propensity"].scorer, state.models["value"].scorer
    _, rows_p, sub_p = _known(prop.encoder.features, state.online("propensity", ids))
    _, rows_v, sub_v = _known(value.encoder.features, state.online("value", ids))
    if not rows_p or not rows_v:
        return {}
    p = dict(zip(rows_p, prop.probability(prop.encoder.transform_columns(sub_p)), strict=True))
    spend = dict(zip(rows_v, value.predict(value.encoder.transform_columns(sub_v))[365], strict=True))
    return {ids[i]: round(float(p[i] * spend[i]), 2) for i in p if i in spend}
