"""Orders and refunds: small trials while a lead, the won deal, repeat orders until churn."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscope.synth.behaviour import sample_process
from leadscope.synth.world import LEAD_COOLING_DAYS, World

CATEGORIES = np.array(["core", "accessories", "premium", "promo"])


def transactions(
    rng: np.random.Generator,
    world: World,
    tr: pd.DataFrame,
    conv: np.ndarray,
    churn: np.ndarray,
    rate: np.ndarray,
    aov: np.ndarray,
) -> pd.DataFrame:
    """The `transactions` table body (who, day, amount, category, is_refund); ids are added by the caller."""
    created = tr["created_day"].to_numpy()
    z, budget, ps = tr["intent"].to_numpy(), tr["budget"].to_numpy(), tr["price_sensitivity"].to_numpy()
    trialist = rng.random(len(tr)) < 0.25
    t_scale = 0.008 * np.exp(0.8 * z) * trialist * np.exp(created / LEAD_COOLING_DAYS)
    t_who, t_day = sample_process(rng, world, world.G, t_scale, created, np.minimum(conv, world.days))
    won = np.flatnonzero(conv < world.days)
    S = world.cumulative(cooling=False)
    start = np.where(np.isfinite(conv), conv + 1.0, world.days)
    r_who, r_day = sample_process(rng, world, S, rate * np.isfinite(conv), start, np.minimum(churn, world.days))
    who = np.concatenate([t_who, won, r_who])
    day = np.concatenate([t_day, conv[won], r_day])
    kind = np.concatenate([np.zeros(len(t_who)), np.ones(len(won)), np.full(len(r_who), 2)]).astype(int)
    mean = np.select([kind == 0, kind == 1], [20.0 * budget[who], 150.0 * budget[who]], aov[who])
    amount = np.round(mean * rng.lognormal(-0.18, 0.6, len(who)), 2)
    promo_p = 0.6 * ps[who]
    premium_p = 0.05 + 0.3 * tr["segment"].to_numpy()[who]
    u = rng.random(len(who))
    cat = np.where(u < promo_p, 3, np.where(u < promo_p + premium_p, 2, rng.integers(0, 2, len(who))))
    orders = pd.DataFrame(
        {
            "who": who,
            "day": day,
            "amount": amount,
            "category": CATEGORIES[cat],
            "quantity": rng.geometric(0.6, len(who)),
            "is_refund": False,
        }
    )
    refund = rng.random(len(orders)) < 0.03 + 0.06 * ps[who]
    refunds = orders[refund].assign(day=lambda d: d["day"] + rng.exponential(7.0, len(d)), is_refund=True)
    out = pd.concat([orders, refunds], ignore_index=True)
    return out[out["day"] < world.days].sort_values("day", ignore_index=True)
