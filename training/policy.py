"""Next-best-action policy: expected incremental value = uplift × value of a response − cost, for the actions a
customer is eligible for (consent, reachability, lifecycle stage, cooldown, contact caps); do-nothing when nothing
pays. Also the budgeted plan for an audience and the off-policy estimators (IPS, doubly robust)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscope.catalogue import Action, Catalogue

CONSENT = {"email": "consent_email", "sms": "consent_sms", "ads": "consent_ads"}


@dataclass
class Context:
    """What eligibility reads, one row per customer, columns in the order of `actions`."""

    stage: np.ndarray  # lifecycle stage (str)
    consent: dict[str, np.ndarray]  # email / sms / ads → bool
    reach: dict[str, np.ndarray]  # email / phone / wechat → bool
    days_since: np.ndarray  # [n, A] days since the action was last done (inf: never)
    count_30d: np.ndarray  # [n, A] times done in the last 30 days
    contacts_7d: np.ndarray  # [n] contacts of any kind in the last 7 days

    def __len__(self) -> int:
        return len(self.stage)


def context(
    frame: pd.DataFrame,
    contacts: pd.DataFrame,
    history: pd.DataFrame,
    actions: list[Action],
    as_of: pd.Timestamp,
) -> Context:
    """frame: features (customer_id, lifecycle_stage, consent_*); contacts: customers' identifiers (presence only
    is read); history: the campaign log (contacts are its treated rows) up to `as_of`."""
    ids = frame["customer_id"].to_numpy()
    n = len(ids)
    info = contacts.set_index("customer_id").reindex(ids)
    reach = {
        "email": info["email"].notna().to_numpy() if "email" in info else np.zeros(n, bool),
        "phone": info["phone"].notna().to_numpy() if "phone" in info else np.zeros(n, bool),
        "wechat": info["wechat_id"].notna().to_numpy() if "wechat_id" in info else np.zeros(n, bool),
    }
    consent = {
        k: (pd.to_numeric(frame[c], errors="coerce").fillna(0).to_numpy() > 0) if c in frame else np.zeros(n, bool)
        for k, c in CONSENT.items()
    }
    stage = frame["lifecycle_stage"].astype("string").fillna("prospect").to_numpy(str)
    days_since = np.full((n, len(actions)), np.inf)
    count_30d = np.zeros((n, len(actions)))
    contacts_7d = np.zeros(n)
    if len(history):
        h = history[history["treated"].astype(int) == 1]
        ts = pd.to_datetime(h["ts"], utc=True)
        h = h.assign(age=(as_of - ts).dt.total_seconds() / 86400.0)[(ts <= as_of).to_numpy()]
        row = pd.Index(ids).get_indexer(h["customer_id"])
        col = pd.Index([a.id for a in actions]).get_indexer(h["action_id"])
        ok = row >= 0
        age = h["age"].to_numpy()
        np.minimum.at(days_since, (row[ok & (col >= 0)], col[ok & (col >= 0)]), age[ok & (col >= 0)])
        recent = ok & (col >= 0) & (age <= 30)
        np.add.at(count_30d, (row[recent], col[recent]), 1)
        np.add.at(contacts_7d, row[ok & (age <= 7)], 1)
    return Context(stage, consent, reach, days_since, count_30d, contacts_7d)


def why_not(cat: Catalogue, action: Action, j: int, ctx: Context, i: int) -> str | None:
    """Why customer i may not get action j (None: eligible). The reasons CRM users see."""
    if action.channel == "do_nothing":
        return None
    rule = action.eligibility
    if rule.lifecycle_stages is not None and ctx.stage[i] not in rule.lifecycle_stages:
        return f"lifecycle stage is {ctx.stage[i]}"
    if rule.consent and not ctx.consent[rule.consent][i]:
        return f"no {rule.consent} consent"
    if rule.reachable and not ctx.reach[rule.reachable][i]:
        return f"no {rule.reachable} on record"
    if action.cooldown_days and ctx.days_since[i, j] < action.cooldown_days:
        return f"cooldown: done {ctx.days_since[i, j]:.0f} days ago (cooldown {action.cooldown_days})"
    if action.max_per_30d is not None and ctx.count_30d[i, j] >= action.max_per_30d:
        return f"cap: {ctx.count_30d[i, j]:.0f} times in 30 days (max {action.max_per_30d})"
    if cat.contacts_per_week is not None and ctx.contacts_7d[i] >= cat.contacts_per_week:
        return f"contact cap: {ctx.contacts_7d[i]:.0f} contacts in 7 days (max {cat.contacts_per_week})"
    return None


def eligible(cat: Catalogue, actions: list[Action], ctx: Context) -> np.ndarray:
    """[n, A] bool, the vectorised `why_not(...) is None`."""
    n = len(ctx)
    out = np.ones((n, len(actions)), bool)
    capped = ctx.contacts_7d >= cat.contacts_per_week if cat.contacts_per_week is not None else np.zeros(n, bool)
    for j, a in enumerate(actions):
        if a.channel == "do_nothing":
            continue
        rule = a.eligibility
        ok = ~capped
        if rule.lifecycle_stages is not None:
            ok &= np.isin(ctx.stage, rule.lifecycle_stages)
        if rule.consent:
            ok &= ctx.consent[rule.consent]
        if rule.reachable:
            ok &= ctx.reach[rule.reachable]
        if a.cooldown_days:
            ok &= ctx.days_since[:, j] >= a.cooldown_days
        if a.max_per_30d is not None:
            ok &= ctx.count_30d[:, j] < a.max_per_30d
        out[:, j] = ok
    return out


def gains(uplift: np.ndarray, value: np.ndarray, costs: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Expected incremental value [n, A]; -inf where not allowed: ineligible, no model, or uplift ≤ 0 (an
    action that lowers the chance of a response is never recommended, whatever the value)."""
    g = uplift * value[:, None] - costs[None, :]
    allowed = ok & np.isfinite(uplift) & (uplift > 0)
    return np.where(allowed, g, -np.inf)


def decide(g: np.ndarray, nothing: int) -> np.ndarray:
    """Best column per row, or `nothing` when no action's expected incremental value is above zero."""
    best = np.argmax(np.where(np.isfinite(g), g, -np.inf), axis=1)
    pays = np.take_along_axis(g, best[:, None], axis=1)[:, 0] > 0
    return np.where(pays, best, nothing)


def allocate(
    g: np.ndarray,
    costs: np.ndarray,
    channels: list[str],
    budget: float,
    capacity: dict[str, int],
    nothing: int,
) -> np.ndarray:
    """One action (or nothing) per customer under a total budget and per-channel capacities.

    Greedy by return per unit of cost over every (customer, action) pair that pays: a multiple-choice knapsack
    whose items are tiny next to the budget, where this greedy is within one item's value of the LP optimum
    (Sinha & Zoltners 1979) at a sort's cost; an exact ILP on 800k binaries buys nothing measurable here."""
    n, A = g.shape
    rows, cols = np.nonzero(np.isfinite(g) & (g > 0))
    if not len(rows):
        return np.full(n, nothing)
    roi = g[rows, cols] / np.maximum(costs[cols], 1e-9)
    order = np.lexsort((rows, -roi))
    chosen = np.full(n, nothing)
    left = {c: capacity.get(c, np.inf) for c in set(channels)}
    spent = 0.0
    for k in order:
        i, j = rows[k], cols[k]
        if chosen[i] != nothing or spent + costs[j] > budget or left[channels[j]] < 1:
            continue
        chosen[i] = j
        spent += costs[j]
        left[channels[j]] -= 1
    return chosen


# --- off-policy evaluation ----------------------------------------------------------------------------------------


def behaviour_probability(decision: np.ndarray, n_decisions: int, nothing: int) -> np.ndarray:
    """The randomised log's P(decision): treated at the log's rate, action uniform among those tried."""
    treated = decision != nothing
    p_treat = treated.mean()
    share = np.bincount(decision[treated], minlength=n_decisions) / max(treated.sum(), 1)
    return np.where(treated, p_treat * share[decision], 1.0 - p_treat)


def off_policy_terms(
    target: np.ndarray, logged: np.ndarray, reward: np.ndarray, q: np.ndarray, propensity: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-row terms whose means estimate a deterministic target policy's value from logged (decision, reward)
    rows: inverse propensity scoring and doubly robust (the direct method's q plus the IPS-weighted residual)."""
    w = (target == logged).astype(float) / propensity
    q_target = np.take_along_axis(q, target[:, None], axis=1)[:, 0]
    q_logged = np.take_along_axis(q, logged[:, None], axis=1)[:, 0]
    dr = q_target + w * (reward - q_logged)
    return {"ips": w * reward, "dm": q_target, "dr": dr, "matched": (target == logged).astype(float)}


def summarise(terms: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean and standard error of each estimator's terms."""
    out = {}
    for k, v in terms.items():
        out[k] = float(np.mean(v))
        out[f"{k}_se"] = float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return out
