"""Seeded synthetic company: the canonical tables of DATA.md plus the ground truth behind them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from leadscope.synth import behaviour, commerce, crm, people, persona, social
from leadscope.synth.world import World


@dataclass
class Company:
    """Generated tables (DATA.md names) and the truth used to make them."""

    world: World
    tables: dict[str, pd.DataFrame]
    truth: dict[str, pd.DataFrame] = field(default_factory=dict)

    def write(self, out: Path, *, tables: bool = True) -> None:
        """Parquet files `<out>/<table>.parquet` (unless `tables` is off) and `<out>/truth/*.parquet` + world.json."""
        (out / "truth").mkdir(parents=True, exist_ok=True)
        for name, df in self.tables.items() if tables else ():
            df.to_parquet(out / f"{name}.parquet", index=False)
        for name, df in self.truth.items():
            df.to_parquet(out / "truth" / f"{name}.parquet", index=False)
        meta = {"start": self.world.start.isoformat(), "days": self.world.days}
        (out / "truth" / "world.json").write_text(json.dumps(meta))


def generate(*, customers: int, seed: int, end: datetime, days: int = 540) -> Company:
    """Simulate `days` of a company's history ending at `end` for `customers` people (plus duplicates)."""
    rng = np.random.default_rng(seed)
    world = World(start=end - timedelta(days=days), days=days)
    tr = people.traits(rng, world, customers)
    ref = social.referrals(rng, tr)
    has_ref = ref >= 0
    # "old brings new": the referred resemble their referrer (homophily in intent and budget)
    tr.loc[has_ref, "intent"] = 0.6 * tr.loc[has_ref, "intent"].to_numpy() + 0.6 * tr["intent"].to_numpy()[ref[has_ref]]
    cust = people.customers_table(rng, world, tr)
    own = np.random.default_rng([seed, 6])  # the lookalike footprint: its own stream (see synth/persona.py)
    cust = pd.concat([cust, persona.attributes(own, tr["segment"].to_numpy())], axis=1)
    tr, cust = people.plant_duplicates(rng, world, tr, cust)
    ref = np.concatenate([ref, np.full(len(tr) - len(ref), -1)])
    src, dst = social.follows(rng, tr)
    scale = behaviour.conversion_scale(tr, social.exposure(tr, src, dst))
    created = tr["created_day"].to_numpy()
    conv = behaviour.convert(rng, world, scale, created)
    kappa = behaviour.churn_hazard(rng, tr)
    churn = conv + rng.exponential(1.0, len(tr)) / kappa
    rate, aov = behaviour.order_profile(tr)
    ids = cust["customer_id"].to_numpy()

    ev = pd.concat(
        [behaviour.lead_events(rng, world, tr, cust, conv), behaviour.customer_events(rng, world, tr, conv, churn)],
        ignore_index=True,
    )
    ev = ev[ev["day"] < world.days].sort_values("day", ignore_index=True)
    tx = commerce.transactions(rng, world, tr, conv, churn, rate, aov)
    first_order = tx[~tx["is_refund"]].drop_duplicates("who")
    deal = np.full(len(tr), np.nan)
    deal[first_order["who"].to_numpy()] = first_order["amount"].to_numpy()
    contractual = rng.random(len(tr)) < 0.4
    st = crm.stages(rng, world, tr, ev, conv, churn, deal, contractual)
    base, up = crm.uplift_matrix(tr)
    camp = crm.campaigns(rng, world, tr, base, up, aov, conv)
    # later randomised test waves, drawn from their own stream so everything above stays as it was: enough
    # logged treatments per action for per-customer uplift models (next-best-action)
    waves = crm.campaigns(np.random.default_rng([seed, 7]), world, tr, base, up, aov, conv, per_person=8.0)
    camp = pd.concat([camp, waves], ignore_index=True).sort_values("day", kind="stable", ignore_index=True)

    tables = {
        "customers": cust,
        "transactions": _finish(world, tx, ids, "transaction_id", "T"),
        "events": _finish(world, ev, ids, "event_id", "E"),
        "edges": _with_community(own, world, ids, tr, social.edges_table(rng, world, ids, tr, ref, src, dst)),
        "stages": _finish(world, st, ids, "event_id", "S"),
        "campaigns": _finish(world, camp, ids, None, ""),
    }
    ts_or_nat = lambda d: world.to_ts(np.where(d < world.days, d, np.nan))  # noqa: E731
    truth_customers = pd.DataFrame(
        {
            "customer_id": ids,
            "person_id": tr["person_id"],
            "created_at": cust["created_at"],
            "segment": tr["segment"],
            "intent": tr["intent"],
            "budget": tr["budget"],
            "price_sensitivity": tr["price_sensitivity"],
            "social_susceptibility": tr["social_susceptibility"],
            "followers": tr["followers"],
            "conversion_scale": scale,
            "converted_at": ts_or_nat(conv),
            "churn_hazard": kappa,
            "contractual": contractual,
            "churned_at": ts_or_nat(churn),
            "order_rate": rate,
            "aov": aov,
        }
    )
    actions = np.array(behaviour.ACTIONS)
    uplift = pd.DataFrame(
        {
            "customer_id": np.repeat(ids, len(actions)),
            "action_id": np.tile(actions, len(ids)),
            "base_rate": np.repeat(base, len(actions)),
            # as of the end of the history: a retention offer only works on someone who has bought
            "uplift": crm.effect(
                up,
                np.repeat(np.arange(len(ids)), len(actions)),
                np.tile(np.arange(len(actions)), len(ids)),
                np.full(len(ids) * len(actions), float(world.days)),
                conv,
            ),
            # True: the action does nothing before the customer's first purchase (`converted_at`)
            "after_purchase_only": np.tile(np.arange(len(actions)) == crm.RETENTION, len(ids)),
        }
    )
    return Company(world=world, tables=tables, truth={"customers": truth_customers, "uplift": uplift})


def _with_community(
    rng: np.random.Generator, world: World, ids: np.ndarray, tr: pd.DataFrame, edges: pd.DataFrame
) -> pd.DataFrame:
    """Follows among the hidden segment's members, linked a few days after the later one arrived."""
    day = tr["created_day"].to_numpy()
    src, dst = persona.community_follows(rng, tr["segment"].to_numpy(), day)
    at = day[src] + rng.exponential(20.0, len(src))
    ok = at < world.days
    extra = pd.DataFrame(
        {
            "src_customer_id": ids[src[ok]],
            "dst_customer_id": ids[dst[ok]],
            "ts": world.to_ts(at[ok]),
            "kind": "follow",
            "weight": 1.0,
        }
    )
    return pd.concat([edges, extra], ignore_index=True).sort_values("ts", ignore_index=True)


def _finish(world: World, df: pd.DataFrame, ids: np.ndarray, id_col: str | None, prefix: str) -> pd.DataFrame:
    """Map owner index → customer_id, day → UTC timestamp `ts`, and add a stable row id."""
    out = df.drop(columns=["who", "day"])
    out.insert(0, "ts", world.to_ts(df["day"].to_numpy()).to_numpy())
    out.insert(0, "customer_id", ids[df["who"].to_numpy()])
    if id_col:
        out.insert(0, id_col, prefix + pd.Series(np.arange(len(df))).astype(str).str.zfill(8))
    return out
