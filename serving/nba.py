"""Next-best-action for CRM calls: online features → uplift per action × value of a response − cost, with
eligibility (consent and lifecycle from the features; reachability and contact history from the CRM tables)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscope import catalogue as catalogue_lib
from leadscope.catalogue import Catalogue
from leadscope.tables import read_feature_meta, read_optional, read_table
from serving.scoring import reasons_for
from serving.state import ServingState
from training import policy


@dataclass
class History:
    """Reachability and contact history of every known customer at the data's "now" (the newest snapshot)."""

    index: pd.Index
    reach: dict[str, np.ndarray]
    days_since: np.ndarray
    count_30d: np.ndarray
    contacts_7d: np.ndarray
    as_of: pd.Timestamp

    def context(self, columns: dict[str, list], rows: list[int], ids: list[str]) -> policy.Context:
        at = self.index.get_indexer([ids[i] for i in rows])
        ok = at >= 0
        pick = lambda a, fill: np.where(ok if a.ndim == 1 else ok[:, None], a[np.maximum(at, 0)], fill)  # noqa: E731
        consent = {
            k: np.array([bool(columns[c][i]) if c in columns and columns[c][i] is not None else False for i in rows])
            for k, c in policy.CONSENT.items()
        }
        stage = np.array(
            [
                str(columns["lifecycle_stage"][i] or "prospect") if "lifecycle_stage" in columns else "prospect"
                for i in rows
            ]
        )
        return policy.Context(
            stage=stage,
            consent=consent,
            reach={k: pick(v, False) for k, v in self.reach.items()},
            days_since=pick(self.days_since, np.inf),
            count_30d=pick(self.count_30d, 0.0),
            contacts_7d=pick(self.contacts_7d, 0.0),
        )


def history(state: ServingState, cat: Catalogue) -> History:
    """Reachability and contact history of every customer, built once per snapshot."""
    settings = state.settings

    def build() -> History:
        as_of = read_feature_meta(settings.feature_dir).end
        customers = read_table(settings.raw_dir, "customers")
        log = read_optional(settings.raw_dir, "campaigns")
        frame = customers[["customer_id"]].assign(lifecycle_stage="prospect")
        ctx = policy.context(frame, customers, log, cat.contacts, as_of)
        index = pd.Index(customers["customer_id"])
        return History(index, ctx.reach, ctx.days_since, ctx.count_30d, ctx.contacts_7d, as_of)

    assert state.snapshots is not None
    return state.snapshots.memo("nba_history", build)


def catalogue(state: ServingState) -> Catalogue:
    """The action catalogue, read once per snapshot (a request must not re-parse YAML)."""
    assert state.snapshots is not None
    return state.snapshots.memo("nba_catalogue", lambda: catalogue_lib.load(state.settings.actions_catalogue))


def recommend(state: ServingState, cat: Catalogue, ids: list[str], max_actions: int) -> list[dict]:
    """One item per id (request order): ranked actions that pay, the recommended one, why others are out."""
    assert state.nba is not None and state.online is not None
    bundle = state.nba.model
    acts = cat.contacts
    columns = state.online.rows("uplift", ids)
    feats = bundle.encoder.features
    rows = [i for i in range(len(ids)) if any(columns[f][i] is not None for f in feats)]
    items: list[dict] = [
        {"customer_id": c, "error": {"code": "unknown_customer", "message": "no features for this customer_id"}}
        for c in ids
    ]
    if not rows:
        return items
    sub = {f: [columns[f][i] for i in rows] for f in feats}
    X = bundle.encoder.transform_columns(sub)
    ctx = history(state, cat).context(columns, rows, ids)
    ok = policy.eligible(cat, acts, ctx)
    action_ids = [a.id for a in acts]
    up = bundle.uplift(X, action_ids)
    value = bundle.response_value(X)
    costs = np.array([a.cost for a in acts])
    g = policy.gains(up, value, costs, ok)
    for j, i in enumerate(rows):
        ranked = [k for k in np.argsort(-g[j], kind="stable") if np.isfinite(g[j, k]) and g[j, k] > 0][:max_actions]
        actions = [
            {
                "action_id": acts[k].id,
                "channel": acts[k].channel,
                "expected_incremental_value": round(float(g[j, k]), 4),
                "uplift": round(float(up[j, k]), 6),
                "value": round(float(value[j]), 2),
                "cost": acts[k].cost,
                "reasons": _reasons(bundle, acts[k].id, X[j : j + 1], feats, sub, j),
            }
            for k in ranked
        ]
        excluded = []
        for k, a in enumerate(acts):
            if k in ranked:
                continue
            why = policy.why_not(cat, a, k, ctx, j)
            if why is None:
                u = up[j, k]
                why = (
                    "no uplift model for this action"
                    if not np.isfinite(u)
                    else "negative uplift"
                    if u <= 0
                    else f"does not pay: {u:.4f} × {value[j]:.2f} − {a.cost:.2f} = {g[j, k]:.2f}"
                    if g[j, k] <= 0
                    else "ranked below max_actions"
                )
            excluded.append({"action_id": a.id, "reason": why})
        best = actions[0]["action_id"] if actions else cat.nothing.id
        items[i] = {"customer_id": ids[i], "recommended": best, "actions": actions, "excluded": excluded}
    return items


def _reasons(bundle, action_id: str, x: np.ndarray, feats: list[str], sub: dict, j: int) -> list[dict]:  # noqa: ANN001
    contrib = bundle.actions[action_id].contributions(x)[0]
    return [r.model_dump() for r in reasons_for(feats, contrib, sub, j)]
