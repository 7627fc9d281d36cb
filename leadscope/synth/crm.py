"""CRM lifecycle stages and the randomised campaign (treatment) log with its true uplift."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscope.synth import behaviour
from leadscope.synth.behaviour import ACTION_COST, ACTIONS
from leadscope.synth.world import World


def stages(
    rng: np.random.Generator,
    world: World,
    tr: pd.DataFrame,
    events: pd.DataFrame,
    conv: np.ndarray,
    churn: np.ndarray,
    deal_value: np.ndarray,
    contractual: np.ndarray,
) -> pd.DataFrame:
    """lead_created → mql (first high-intent touch) → sql → won / lost; churned for contracts."""
    n = len(tr)
    created = tr["created_day"].to_numpy()
    hot = events[events["event_type"].isin(["pricing_view", "form_submit", "inbound_call"])]
    mql = np.full(n, np.inf)
    np.minimum.at(mql, hot["who"].to_numpy(), hot["day"].to_numpy())
    z = tr["intent"].to_numpy()
    sql = np.where(rng.random(n) < 1 / (1 + np.exp(-z)), mql + rng.exponential(10.0, n), np.inf)
    lost = np.where(rng.random(n) < 0.5, created + 150 + rng.exponential(30.0, n), np.inf)
    rows = [
        (np.arange(n), created, "lead_created", np.nan),
        (np.flatnonzero(mql < conv), mql[mql < conv], "mql", np.nan),
        (np.flatnonzero(sql < conv), sql[sql < conv], "sql", np.nan),
        (np.flatnonzero(lost < conv), lost[lost < conv], "lost", np.nan),
        (np.flatnonzero(np.isfinite(conv)), conv[np.isfinite(conv)], "won", deal_value),
        (np.flatnonzero(contractual & np.isfinite(churn)), churn[contractual & np.isfinite(churn)], "churned", np.nan),
    ]
    frames = []
    for who, day, stage, value in rows:
        v = value[who] if isinstance(value, np.ndarray) else value
        frames.append(pd.DataFrame({"who": who, "day": day, "stage": stage, "value": v}))
    out = pd.concat(frames, ignore_index=True)
    out = out[out["day"] < world.days]
    return out.assign(currency=np.where(out["stage"] == "won", "USD", None)).sort_values("day", ignore_index=True)


RETENTION = ACTIONS.index("retention_offer")


def uplift_matrix(tr: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(baseline response probability, true uplift per action for a paying customer): the oracle of
    next-best-action. A retention offer works on what makes customers leave (price sensitivity, low intent: the
    systematic part of the churn hazard), and only on someone who has bought: see `effect`."""
    z, ps = tr["intent"].to_numpy(), tr["price_sensitivity"].to_numpy()
    ss = tr["social_susceptibility"].to_numpy()
    followers = tr["followers"].to_numpy()
    base = 1 / (1 + np.exp(-(-2.5 + 0.8 * z)))
    sig = 1 / (1 + np.exp(-z))
    # what drives each action's effect is mostly something a CRM records (age, company size, the channel a lead
    # came through, followers), partly hidden (intent, price sensitivity, social susceptibility)
    young = (tr["age"].to_numpy() < 35).astype(float)
    big = (tr["company_size"].to_numpy() >= 100).astype(float)
    wechat_native = (tr["source_channel"].to_numpy() == "wechat").astype(float)
    up = np.stack(
        [
            0.03 * sig,  # email_offer: small, positive
            0.10 * young + 0.06 * ps - 0.04,  # sms_coupon: the young and price-sensitive; annoys the rest
            0.10 * sig * big - 0.015,  # sales_call: only bigger companies pay back
            0.07 * wechat_native + 0.04 * ss - 0.005,  # wechat_message: people who came through WeChat
            0.02 + 0.015 * np.tanh(z),  # retargeting_ad
            0.06 * (followers > 500) + 0.02 * ss - 0.01,  # referral_invite: people with reach
            np.clip(0.16 * np.exp(behaviour.churn_risk(tr)) - 0.12, -0.05, 0.2),  # retention_offer: the at-risk
        ],
        axis=1,
    )
    up = np.minimum(up, 1.0 - base[:, None])
    return base, up


def effect(
    up: np.ndarray, who: np.ndarray, action: np.ndarray, day: np.ndarray, customer_from: np.ndarray
) -> np.ndarray:
    """A contact's true uplift on day `day`: a retention offer to someone who has not bought yet does nothing."""
    out = up[who, action]
    return np.where((action == RETENTION) & (day < customer_from[who]), 0.0, out)


def campaigns(
    rng: np.random.Generator,
    world: World,
    tr: pd.DataFrame,
    base: np.ndarray,
    up: np.ndarray,
    aov: np.ndarray,
    customer_from: np.ndarray,
    per_person: float = 1.2,
) -> pd.DataFrame:
    """Randomised 50/50 campaigns: outcome ~ Bernoulli(base + treated·uplift); a response is worth one order.
    customer_from: the day each person first bought (inf: never)."""
    n = len(tr)
    k = rng.poisson(per_person, n)
    who = np.repeat(np.arange(n), k)
    created = tr["created_day"].to_numpy()[who]
    day = created + rng.random(len(who)) * (world.days - created)
    action = rng.integers(0, len(ACTIONS), len(who))
    treated = rng.random(len(who)) < 0.5
    p = np.clip(base[who] + treated * effect(up, who, action, day, customer_from), 0.0, 1.0)
    outcome = rng.random(len(who)) < p
    names = np.array(ACTIONS)[action]
    return pd.DataFrame(
        {
            "who": who,
            "day": day,
            "action_id": names,
            "treated": treated.astype(int),
            "outcome": outcome.astype(int),
            "value": np.round(outcome * aov[who], 2),
            "cost": np.array([ACTION_COST[a] for a in ACTIONS])[action] * treated,
            "randomized": True,
        }
    ).sort_values("day", ignore_index=True)
