"""Behaviour driven by hidden traits: conversion, engagement, orders, churn, CRM stages, campaigns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscope.synth.world import LEAD_COOLING_DAYS, World

BASE_HAZARD = 0.0012
# (channel, event_type, page, base rate per day for a fresh lead, loading on intent, eligibility column)
LEAD_EVENTS = (
    ("web", "page_view", "/product", 0.10, 0.45, None),
    ("web", "pricing_view", "/pricing", 0.02, 1.0, None),
    ("ads", "ad_click", None, 0.03, 0.15, "consent_ads"),
    ("social", "social_engage", None, 0.03, 0.3, None),
    ("wechat", "wechat_message", None, 0.06, 0.6, "wechat_id"),
    ("form", "form_submit", "/contact", 0.005, 0.9, None),
    ("call", "inbound_call", None, 0.002, 1.1, None),
    ("store", "store_visit", None, 0.03, 0.5, "is_store"),
    ("sms", "sms_click", None, 0.01, 0.4, "consent_sms"),
)
CUSTOMER_EVENTS = (("app", "app_open", None, 0.08), ("web", "page_view", "/account", 0.05))
ACTIONS = (
    "email_offer",
    "sms_coupon",
    "sales_call",
    "wechat_message",
    "retargeting_ad",
    "referral_invite",
    "retention_offer",
)
ACTION_COST = {
    "email_offer": 0.05,
    "sms_coupon": 0.5,
    "sales_call": 8.0,
    "wechat_message": 0.1,
    "retargeting_ad": 1.0,
    "referral_invite": 0.2,
    "retention_offer": 5.0,
}


def sample_process(
    rng: np.random.Generator, world: World, G: np.ndarray, scale: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Event times of a Poisson process with intensity scale_i·dG on [a_i, b_i): (owner index, day)."""
    lo, hi = np.interp(a, world.grid, G), np.interp(np.maximum(a, b), world.grid, G)
    k = rng.poisson(np.maximum(scale * (hi - lo), 0.0))
    who = np.repeat(np.arange(len(scale)), k)
    level = lo[who] + rng.random(len(who)) * (hi - lo)[who]
    return who, world.invert(level, G)


def conversion_scale(tr: pd.DataFrame, expo: np.ndarray) -> np.ndarray:
    """Per-person multiplier of the cooling intensity: hazard(u) = scale·season(u)·exp(-u/τ)."""
    lin = (
        1.0 * tr["intent"]
        + 0.3 * np.log(tr["budget"])
        - 0.5 * tr["price_sensitivity"]
        + tr["industry_effect"]
        + 0.1 * np.log(tr["company_size"])
        + 2.0 * tr["social_susceptibility"] * expo
    )
    return BASE_HAZARD * np.exp(lin.to_numpy() + tr["created_day"].to_numpy() / LEAD_COOLING_DAYS)


def convert(rng: np.random.Generator, world: World, scale: np.ndarray, created: np.ndarray) -> np.ndarray:
    """Day each person converts (won); inf when never within the grid."""
    level = np.interp(created, world.grid, world.G) + rng.exponential(1.0, len(scale)) / scale
    return world.invert(level)


def lead_events(
    rng: np.random.Generator, world: World, tr: pd.DataFrame, cust: pd.DataFrame, conv: np.ndarray
) -> pd.DataFrame:
    """Engagement while a lead: rates rise with intent, cool with lead age, stop at conversion."""
    created = tr["created_day"].to_numpy()
    stop = np.minimum(conv, world.days)
    cool = np.exp(created / LEAD_COOLING_DAYS)
    elig = {
        "consent_ads": cust["consent_ads"].to_numpy(),
        "wechat_id": cust["wechat_id"].notna().to_numpy(),
        "is_store": cust["source_channel"].to_numpy() == "store",
        "consent_sms": cust["consent_sms"].to_numpy(),
    }
    z, act = tr["intent"].to_numpy(), tr["activity"].to_numpy()
    frames = []
    for channel, etype, page, rate, load, col in LEAD_EVENTS:
        scale = rate * np.exp(load * z + act) * cool * (elig[col] if col else 1.0)
        if etype == "social_engage":
            scale = scale * (1.0 + 3.0 * tr["social_susceptibility"].to_numpy())
        who, day = sample_process(rng, world, world.G, scale, created, stop)
        frames.append(pd.DataFrame({"who": who, "day": day, "channel": channel, "event_type": etype, "page": page}))
    frames.append(_email_events(rng, world, tr, cust["consent_email"].to_numpy()))
    return pd.concat(frames, ignore_index=True)


def customer_events(
    rng: np.random.Generator, world: World, tr: pd.DataFrame, conv: np.ndarray, churn: np.ndarray
) -> pd.DataFrame:
    """Engagement of paying customers, until they churn."""
    S = world.cumulative(cooling=False)
    frames = []
    for channel, etype, page, rate in CUSTOMER_EVENTS:
        scale = rate * np.exp(tr["activity"].to_numpy()) * np.isfinite(conv)
        a = np.where(np.isfinite(conv), conv, world.days)
        who, day = sample_process(rng, world, S, scale, a, np.minimum(churn, world.days))
        frames.append(pd.DataFrame({"who": who, "day": day, "channel": channel, "event_type": etype, "page": page}))
    return pd.concat(frames, ignore_index=True)


def _email_events(rng: np.random.Generator, world: World, tr: pd.DataFrame, consent: np.ndarray) -> pd.DataFrame:
    """A fortnightly newsletter to consenting people; opens and clicks reveal intent, noisily."""
    S = world.cumulative(cooling=False)
    created = tr["created_day"].to_numpy()
    who, day = sample_process(rng, world, S, consent / 14.0, created, np.full(len(tr), float(world.days)))
    z, act = tr["intent"].to_numpy()[who], tr["activity"].to_numpy()[who]
    opened = rng.random(len(who)) < 1 / (1 + np.exp(-(-1.3 + 0.6 * z + act)))
    clicked = opened & (rng.random(len(who)) < 1 / (1 + np.exp(-(-1.2 + 0.7 * z))))
    lag = rng.exponential(0.5, len(who))
    parts = [
        (who, day, "email_sent"),
        (who[opened], day[opened] + lag[opened], "email_open"),
        (who[clicked], day[clicked] + 1.3 * lag[clicked], "email_click"),
    ]
    return pd.concat(
        [pd.DataFrame({"who": w, "day": d, "channel": "email", "event_type": t, "page": None}) for w, d, t in parts],
        ignore_index=True,
    )


def churn_risk(tr: pd.DataFrame) -> np.ndarray:
    """The systematic part of the churn hazard's log: price-sensitive, low-intent people leave sooner."""
    return (1.2 * (tr["price_sensitivity"] - 0.5) - 0.4 * tr["intent"] - 0.5 * tr["segment"]).to_numpy()


def churn_hazard(rng: np.random.Generator, tr: pd.DataFrame) -> np.ndarray:
    """Daily churn hazard of a paying customer: the systematic risk times a person's luck."""
    return 0.004 * np.exp(churn_risk(tr) + rng.normal(0, 0.3, len(tr)))


def order_profile(tr: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(orders per day while alive, mean order value) of a paying customer."""
    rate = 0.025 * np.exp(0.4 * np.log(tr["budget"]) + 0.3 * tr["segment"] + 0.3 * tr["activity"])
    aov = 60.0 * tr["budget"] * (1.0 - 0.3 * tr["price_sensitivity"])
    return rate.to_numpy(), aov.to_numpy()
