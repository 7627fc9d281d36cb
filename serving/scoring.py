"""Turn online feature rows into scored items with reasons (numpy on the hot path)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np

from features.catalog import describe
from features.engineering import NO_TOUCH
from leadscope.schema import SCORED_MODELS
from serving import observability as obs
from serving.schemas import ItemError, Reason, Score, ScoreItem, ValueEstimate
from serving.state import ServingState
from training.scorer import Scorer

TOP_REASONS = 3
UNKNOWN = ItemError(code="unknown_customer", message="no features for this customer_id in the online store")

log = logging.getLogger("leadscope.serving")


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
            reasons=reasons_for(feats, contrib[j], sub, j),
        )
    return out


def explain_rows(scorer: Scorer, columns: dict[str, list]) -> list[tuple[Score, dict] | None]:
    """Like score_rows, with each row's whole explanation: contribution, value and label per feature (what the
    score history compares to say which reasons moved)."""
    feats = scorer.encoder.features
    n, rows, sub = _known(feats, columns)
    out: list[tuple[Score, dict] | None] = [None] * n
    if not rows:
        return out
    X = scorer.encoder.transform_columns(sub)
    p, contrib = scorer.explain(X)
    score, grade = scorer.score(p), scorer.grade(scorer.score(p))
    labels = {f: describe(f).label for f in feats}
    for j, i in enumerate(rows):
        detail = {
            "impact": {f: float(contrib[j][k]) for k, f in enumerate(feats)},
            "values": {f: _shown(sub[f][j]) for f in feats},
            "labels": labels,
        }
        s = Score(
            probability=round(float(p[j]), 6),
            score=int(score[j]),
            grade=grade[j],
            reasons=reasons_for(feats, contrib[j], sub, j),
        )
        out[i] = (s, detail)
    return out


def point_rows(scorer: Scorer, columns: dict[str, list]) -> list[tuple[float, int, str] | None]:
    """(probability, score, grade) per row from a plain predict, as score_rows rounds them; None for unknown ids."""
    feats = scorer.encoder.features
    n, rows, sub = _known(feats, columns)
    out: list[tuple[float, int, str] | None] = [None] * n
    if not rows:
        return out
    p = scorer.probability(scorer.encoder.transform_columns(sub))
    score = scorer.score(p)
    for j, (i, g) in enumerate(zip(rows, scorer.grade(score), strict=True)):
        out[i] = (round(float(p[j]), 6), int(score[j]), g)
    return out


def _shown(v: object) -> object:
    if isinstance(v, float):
        return None if math.isnan(v) or v == NO_TOUCH else round(v, 4)
    return v


def value_rows(model: object, columns: dict[str, list]) -> list[ValueEstimate | None]:
    """Expected spend per row (LightGBM per horizon) with the 90-day model's top contributions."""
    feats = model.encoder.features
    n, rows, sub = _known(feats, columns)
    out: list[ValueEstimate | None] = [None] * n
    if not rows:
        return out
    X = model.encoder.transform_columns(sub)
    pred, orders, contrib = model.predict(X), model.expected_orders(X), model.contributions(X)
    methods = {f"{h}d": model.methods.get(h, "lightgbm") for h in model.horizons}
    for j, i in enumerate(rows):
        spend = {h: round(float(v[j]), 2) for h, v in pred.items()}
        out[i] = ValueEstimate(
            expected_spend_90d=spend.get(90),
            expected_spend_365d=spend.get(365),
            expected_spend={f"{h}d": v for h, v in spend.items()},
            expected_orders={f"{h}d": round(float(v[j]), 3) for h, v in orders.items()},
            methods=methods,
            reasons=reasons_for(feats, contrib[j], sub, j),
        )
    return out


def _known(feats: list[str], columns: dict[str, list]) -> tuple[int, list[int], dict[str, list]]:
    """(rows in the response, rows with any feature, their feature columns): all-missing rows are unknown ids."""
    n = len(next(iter(columns.values())))
    rows = [i for i in range(n) if any(columns[f][i] is not None for f in feats)]
    return n, rows, {f: [columns[f][i] for i in rows] for f in feats}


def reasons_for(feats: list[str], contrib: np.ndarray, sub: dict[str, list], j: int) -> list[Reason]:
    top = np.argsort(-np.abs(contrib), kind="stable")[:TOP_REASONS]
    out = []
    for k in top:
        info = describe(feats[k])
        v = _shown(sub[feats[k]][j])  # NO_TOUCH: never happened
        out.append(Reason(feature=feats[k], label=info.label, value=v, impact=round(float(contrib[k]), 4)))
    return out


def score_items(
    state: ServingState,
    names: list[str],
    ids: list[str],
    read: Callable[[str, list[str]], dict[str, list]] | None = None,
) -> list[ScoreItem]:
    """One ScoreItem per id, in order: each requested model's output, or an item error for unknown ids.

    A model's output is kept in the online cache with the feature rows and dropped with them (serving/online.py):
    a CRM re-scoring its leads gets the stored answer instead of another TreeSHAP pass. Customers that live
    records changed (in any worker) are dropped from the cache first. `read(model, ids)`: the feature columns
    from elsewhere than the online store, as its read returns them (serving/offline.py), scored without the cache."""
    if state.live is not None:
        state.live.follow()
    if read is None:
        scored = {m: _scored(state, m, ids) for m in names}
    else:
        scored = {m: (value_rows if m == "value" else score_rows)(state.models[m].model, read(m, ids)) for m in names}
    items = []
    for i, cid in enumerate(ids):
        if all(scored[m][i] is None for m in names):
            obs.ITEM_ERRORS.labels(UNKNOWN.code).inc()
            items.append(ScoreItem(customer_id=cid, error=UNKNOWN))
            continue
        custom = {m: scored[m][i] for m in names if m not in SCORED_MODELS and scored[m][i] is not None}
        item = ScoreItem(
            customer_id=cid,
            **{m: scored[m][i] for m in names if m in SCORED_MODELS},
            outcomes=custom or None,
        )
        for m in names:
            if m != "value" and scored[m][i] is not None:
                obs.SCORES.labels(m).observe(scored[m][i].probability)
        items.append(item)
    return items


def _scored(state: ServingState, m: str, ids: list[str]) -> list:
    fn = value_rows if m == "value" else score_rows
    champ, online = state.models[m], state.online
    assert online is not None
    return online.results(("result", m, champ.version), ids, lambda todo: fn(champ.model, online.rows(m, todo)))


def expected_values(state: ServingState, ids: list[str]) -> dict[str, float]:
    """P(convert) × expected spend over the value model's longest horizon (365 days where the history allowed it)
    per known id, without reasons (no TreeSHAP): the predicted value a conversion signal carries before the deal
    closes."""
    prop, value = state.models["propensity"].model, state.models["value"].model
    assert state.online is not None
    _, rows_p, sub_p = _known(prop.encoder.features, state.online.rows("propensity", ids))
    _, rows_v, sub_v = _known(value.encoder.features, state.online.rows("value", ids))
    if not rows_p or not rows_v:
        return {}
    p = dict(zip(rows_p, prop.probability(prop.encoder.transform_columns(sub_p)), strict=True))
    longest = max(value.horizons)
    spend = dict(zip(rows_v, value.predict(value.encoder.transform_columns(sub_v))[longest], strict=True))
    return {ids[i]: round(float(p[i] * spend[i]), 2) for i in p if i in spend}


def prewarm(state: ServingState, names: tuple[str, ...] = ("propensity",), chunk: int = 2_000) -> int:
    """Score every known customer into the cache (as many as it holds), so CRM calls find features and answers
    ready. Runs after loading and after each new materialisation or champion; the API serves meanwhile."""
    from leadscope.tables import read_table

    names = tuple(m for m in names if m in state.models)
    cache = state.online.cache if state.online is not None else None
    if cache is None or not names:
        return 0
    state.warming = True
    t0 = time.perf_counter()
    try:
        ids = read_table(state.settings.raw_dir, "customers")["customer_id"].astype(str).tolist()
        ids = ids[: cache.maxsize // (2 * len(names))]  # a feature row and a result per model and id
        for start in range(0, len(ids), chunk):
            for m in names:
                _scored(state, m, ids[start : start + chunk])
        log.info("cache prewarmed: %d customers, %s, %.1f s", len(ids), ",".join(names), time.perf_counter() - t0)
        return len(ids)
    finally:
        state.warming = False
