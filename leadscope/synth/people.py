"""Hidden traits of people and the `customers` table they show as (with PII, click ids, duplicates)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscope.synth.world import World

SOURCE_CHANNELS = np.array(["web", "ads", "social", "wechat", "form", "store", "referral"])
INDUSTRIES = np.array(["retail", "tech", "finance", "health", "education", "manufacturing", "media", "other"])
INDUSTRY_EFFECT = np.array([0.0, 0.35, 0.2, 0.1, -0.2, 0.05, -0.1, -0.3])
REGIONS = np.array(["north", "south", "east", "west", "central"])
FIRST = np.array(["Anna", "Li", "Wei", "José", "Maria", "Chen", "John", "Sara", "Ömer", "Yuki", "Amir", "Zoë"])
LAST = np.array(["Smith", "Wang", "Zhang", "García", "Müller", "Liu", "Brown", "Kim", "Rossi", "Nakamura"])
DOMAINS = np.array(["gmail.com", "example.com", "qq.com", "outlook.com", "163.com", "corp.example"])


def traits(rng: np.random.Generator, world: World, n: int) -> pd.DataFrame:
    """Per-person hidden drivers; only noisy behaviour reveals them."""
    segment = rng.random(n) < 0.08
    t = _arrival_days(rng, world, n)
    frac = t / world.days
    # channel mix drifts: ads grow, web shrinks over the simulated period
    p = np.stack(
        [
            0.26 - 0.08 * frac,
            0.18 + 0.12 * frac,
            0.14 + 0 * frac,
            0.12 + 0 * frac,
            0.12 - 0.04 * frac,
            0.10 + 0 * frac,
            0.08 + 0 * frac,
        ],
        axis=1,
    )
    channel = _choice_rows(rng, p / p.sum(axis=1, keepdims=True))
    chan_effect = np.array([0.0, -0.35, -0.1, 0.15, 0.25, 0.2, 0.45])[channel]
    followers = np.minimum(np.floor(8.0 * (1.0 / rng.random(n)) ** (1 / 1.1)), 3_000_000).astype(np.int64)
    industry = rng.choice(len(INDUSTRIES), n, p=[0.2, 0.15, 0.1, 0.1, 0.1, 0.15, 0.08, 0.12])
    industry = np.where(segment & (rng.random(n) < 0.6), 1, industry)  # the segment leans to tech
    return pd.DataFrame(
        {
            "created_day": t,
            "source_channel": SOURCE_CHANNELS[channel],
            "intent": rng.normal(0.0, 1.0, n) + 0.5 * segment + chan_effect,
            "activity": rng.normal(0.0, 0.35, n),  # chattiness unrelated to buying
            "budget": np.exp(rng.normal(0.0, 0.7, n) + 0.6 * segment),
            "price_sensitivity": np.clip(rng.beta(2, 2, n) - 0.25 * segment, 0, 1),
            "social_susceptibility": rng.beta(2, 4, n),
            "followers": followers,
            "segment": segment,
            "industry": INDUSTRIES[industry],
            "industry_effect": INDUSTRY_EFFECT[industry],
            "company_size": np.floor(np.exp(rng.normal(3.5, 1.5, n) + 0.8 * segment)).astype(np.int64) + 1,
            "age": np.clip(rng.normal(38, 11, n), 18, 75).astype(np.int64),
            "region": REGIONS[rng.integers(0, len(REGIONS), n)],
        }
    )


def customers_table(rng: np.random.Generator, world: World, tr: pd.DataFrame) -> pd.DataFrame:
    """What the CRM holds: ids, created_at, custom attributes (some missing), PII and click ids."""
    n = len(tr)
    ch = tr["source_channel"].to_numpy()
    first, last = FIRST[rng.integers(0, len(FIRST), n)], LAST[rng.integers(0, len(LAST), n)]
    num = rng.permutation(10 * n)[:n] + 1  # unique, so that two people never share a mailbox by chance
    email = np.char.add(
        np.char.add(
            np.char.add(np.char.lower(first.astype(str)), "."),
            np.char.add(np.char.lower(last.astype(str)), num.astype(str)),
        ),
        np.char.add("@", DOMAINS[rng.integers(0, len(DOMAINS), n)]),
    )
    local = (2_000_000 + rng.permutation(7_000_000)[:n]).astype(str)
    country = np.where(rng.random(n) < 0.7, "US", "CN")
    phone = np.where(country == "US", np.char.add("+1 650 ", local), np.char.add("+86 138 1", local))
    df = pd.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in range(n)],
            "created_at": world.to_ts(tr["created_day"].to_numpy()),
            "source_channel": ch,
            "email": np.where(rng.random(n) < 0.9, email, None),
            "phone": np.where(rng.random(n) < 0.7, phone, None),
            "first_name": first,
            "last_name": last,
            "country": country,
            "wechat_id": np.where((ch == "wechat") | (rng.random(n) < 0.25), [f"wx_{i:x}" for i in num * 7919], None),
            "gclid": _click_ids(rng, (ch == "ads") & (rng.random(n) < 0.6), "Cj0K"),
            "fbc": _click_ids(rng, (ch == "social") & (rng.random(n) < 0.5), "fb.1.1700000000."),
            "bd_vid": _click_ids(rng, (ch == "ads") & (rng.random(n) < 0.3), "bd"),
            "consent_email": rng.random(n) < 0.75,
            "consent_sms": rng.random(n) < 0.5,
            "consent_ads": rng.random(n) < 0.8,
            "industry": np.where(rng.random(n) < 0.9, tr["industry"], None),
            "company_size": tr["company_size"].where(rng.random(n) < 0.8).astype("Float64"),
            "age": tr["age"].where(rng.random(n) < 0.85).astype("Int64"),
            "region": tr["region"],
            "social_followers": tr["followers"].where(rng.random(n) < 0.6).astype("Int64"),
            "role": np.where(
                tr["followers"] > 10_000, "opinion_leader", np.where(rng.random(n) < 0.02, "employee", "consumer")
            ),
        }
    )
    return df


def plant_duplicates(
    rng: np.random.Generator, world: World, tr: pd.DataFrame, cust: pd.DataFrame, share: float = 0.02
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Some people arrive again through another channel, sharing one identifier written differently:
    the email (case, spaces, gmail dots), the phone (another format) or the WeChat id."""
    src = np.flatnonzero((rng.random(len(tr)) < share) & cust["email"].notna().to_numpy())
    n0 = len(tr)
    tr2 = tr.iloc[src].copy()
    tr2["created_day"] = np.minimum(tr2["created_day"] + rng.uniform(5, 120, len(src)), world.days - 1)
    tr2["activity"] = rng.normal(-0.5, 0.5, len(src))
    dup = cust.iloc[src].copy()
    dup["customer_id"] = [f"C{i:07d}" for i in range(n0, n0 + len(src))]
    dup["created_at"] = world.to_ts(tr2["created_day"].to_numpy())
    dup["source_channel"] = rng.choice(["form", "store", "wechat"], len(src))
    mode = rng.choice(["email", "phone", "wechat"], len(src), p=[0.6, 0.25, 0.15])
    mode = np.where((mode == "phone") & dup["phone"].isna().to_numpy(), "email", mode)
    mode = np.where((mode == "wechat") & dup["wechat_id"].isna().to_numpy(), "email", mode)
    dup["email"] = np.where(mode == "email", [_email_variant(rng, e) for e in dup["email"]], None)
    national = dup["phone"].str.replace("+1 650 ", "(650) ", regex=False).str.replace("+86 138 ", "138-", regex=False)
    dup["phone"] = np.where(mode == "phone", national, None)  # written without the country code
    dup["wechat_id"] = np.where(mode == "wechat", dup["wechat_id"], None)
    for col in ("gclid", "fbc", "bd_vid"):
        dup[col] = None
    tr_all = pd.concat([tr, tr2], ignore_index=True)
    person = np.concatenate([np.arange(n0), src])
    cust_all = pd.concat([cust, dup], ignore_index=True)
    # a few shops type their own number into the phone field of walk-in customers: one phone, many people
    shop = np.flatnonzero((cust_all["source_channel"].to_numpy() == "store") & (rng.random(len(cust_all)) < 0.05))
    cust_all.loc[shop, "phone"] = rng.choice(["+1 650 5550100", "+1 650 5550101", "+1 650 5550102"], len(shop))
    return tr_all.assign(person_id=[f"P{p:07d}" for p in person]), cust_all


def _email_variant(rng: np.random.Generator, email: str) -> str:
    local, _, domain = email.partition("@")
    k = rng.integers(0, 3)
    if k == 0 and domain == "gmail.com" and len(local) > 2:
        return f"{local[:2]}.{local[2:]}@{domain}"  # gmail ignores dots in the local part
    return email.upper() if k == 1 else f"  {email} "


def _arrival_days(rng: np.random.Generator, world: World, n: int) -> np.ndarray:
    """Lead arrivals grow over time and follow the seasons (inverse-CDF on a daily grid)."""
    g = np.arange(world.days + 1, dtype=float)
    cdf = np.cumsum(world.season(g) * (1.0 + 0.6 * g / world.days))
    return np.interp(rng.random(n) * cdf[-1], cdf, g)


def _choice_rows(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    return (p.cumsum(axis=1) < rng.random((len(p), 1))).sum(axis=1)


def _click_ids(rng: np.random.Generator, mask: np.ndarray, prefix: str) -> np.ndarray:
    ids = np.char.add(prefix, rng.integers(10**11, 10**12, len(mask)).astype(str))
    return np.where(mask, ids, None)
