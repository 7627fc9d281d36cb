"""Next-best-action against the generator's truth: the true incremental value of our policy, the oracle policy
(true uplift, same eligibility) and the baselines, on held-out customers at the newest snapshot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.build import read_table
from leadscope import catalogue as catalogue_lib
from leadscope.settings import Settings
from training import nba, policy
from training.lookalike import Population
from training.uplift import UpliftBundle, split_customers


@dataclass
class Truth:
    uplift: np.ndarray  # [n, A+1] true uplift per contact action (0 for nothing)
    value: np.ndarray  # [n] true value of a response (the customer's order value)


def truth_for(settings: Settings, ids: np.ndarray, action_ids: list[str]) -> Truth:
    truth_dir = settings.raw_dir / "truth"
    raw = pd.read_parquet(truth_dir / "uplift.parquet")
    # the effect a contact really has: the response probability cannot go below zero
    raw = raw.assign(uplift=np.maximum(raw["uplift"], -raw["base_rate"]))
    up = raw.pivot(index="customer_id", columns="action_id", values="uplift")
    cust = pd.read_parquet(truth_dir / "customers.parquet").set_index("customer_id")
    matrix = up.reindex(index=ids, columns=action_ids).fillna(0.0).to_numpy()
    return Truth(np.column_stack([matrix, np.zeros(len(ids))]), cust["aov"].reindex(ids).to_numpy(float))


def _eligible(settings: Settings, cat: catalogue_lib.Catalogue, frame: pd.DataFrame, as_of: pd.Timestamp) -> np.ndarray:
    """Who may get which contact action at `as_of` (consent, reach, stage, cooldowns and caps from the log)."""
    contacts, log = read_table(settings.raw_dir, "customers"), read_table(settings.raw_dir, "campaigns")
    return policy.eligible(cat, cat.contacts, policy.context(frame, contacts, log, cat.contacts, as_of))


def true_values(truth: Truth, costs: np.ndarray, chosen: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean true incremental value per customer of each policy's decisions."""
    gain = truth.uplift * truth.value[:, None] - costs[None, :]
    return {name: float(np.take_along_axis(gain, d[:, None], axis=1).mean()) for name, d in chosen.items()}


def evaluate(settings: Settings, pop: Population, bundle: UpliftBundle | None = None) -> dict[str, float]:
    """True mean incremental value per held-out customer: ours, oracle, best single action, random,
    rank-by-propensity, do-nothing (all with the same eligibility, cooldowns and caps included)."""
    cat = catalogue_lib.load(settings.actions_catalogue)
    bundle = bundle or nba.load_champion(settings)[1]
    held = ~split_customers(pd.Series(pop.ids))
    frame = pop.frame[held].reset_index(drop=True)
    acts = cat.contacts
    ok = _eligible(settings, cat, frame, pd.Timestamp(pop.as_of))
    X = bundle.encoder.transform(frame).astype(np.float32)
    pols, _, _, _ = nba.decisions(bundle, cat, X, ok)
    costs = np.array([a.cost for a in acts] + [0.0])
    truth = truth_for(settings, frame["customer_id"].to_numpy(), [a.id for a in acts])
    allowed = np.column_stack([ok, np.ones(len(X), bool)])
    true_gain = np.where(allowed, truth.uplift * truth.value[:, None] - costs[None, :], -np.inf)
    true_gain[:, pols.nothing] = 0.0
    chosen = dict(pols.chosen) | {"oracle": policy.decide(true_gain, pols.nothing)}
    values = true_values(truth, costs, chosen)
    singles = {k: v for k, v in values.items() if k.startswith("all_")}
    best = max(singles, key=singles.get)
    values["best_single_action"] = singles[best]
    values["best_single_action_is"] = best.removeprefix("all_")
    values["customers"] = int(len(X))
    values["share_contacted_ours"] = float((chosen["ours"] != pols.nothing).mean())
    return values


def ope_against_truth(
    settings: Settings, logged_frame: pd.DataFrame, bundle: UpliftBundle, best_single: str
) -> dict[str, dict[str, float]]:
    """On the held-out customers' logged rows: each policy's IPS and DR estimates of incremental value per row
    (vs do-nothing) next to its true incremental value on the same rows (true uplift × value − cost)."""
    cat = catalogue_lib.load(settings.actions_catalogue)
    held = logged_frame[~split_customers(logged_frame["customer_id"])].reset_index(drop=True)
    contacts = read_table(settings.raw_dir, "customers")
    est, pols, known = nba.ope_rows(held, bundle, cat, contacts, best_single=best_single)
    acts = cat.contacts
    truth = truth_for(settings, held["customer_id"].to_numpy(), [a.id for a in acts])
    costs = np.array([a.cost for a in acts] + [0.0])
    gain = truth.uplift * truth.value[:, None] - costs[None, :]
    out = {}
    for name in ("ours", "best_single_action", "rank_by_propensity", "random", "do_nothing"):
        d = pols.chosen[name][known]
        out[name] = {
            **{k: est[name][k] for k in ("ips", "ips_se", "dr", "dr_se")},
            "true": float(np.take_along_axis(gain[known], d[:, None], axis=1).mean()),
        }
    return out


def feature_ceiling(settings: Settings, pop: Population, threads: int = 1) -> float:
    """True value of the policy built from the best these features can say about the truth: per action a
    regressor from features to the *true* uplift, and one to the true value of a response, fitted on the
    training customers (cross-customer, as our models are) and applied to the held-out ones: a reference for
    how much of the oracle these features can reach at all, which models learning from outcomes only approach."""
    import lightgbm as lgb

    cat = catalogue_lib.load(settings.actions_catalogue)
    acts = cat.contacts
    frame = pop.frame.reset_index(drop=True)
    held = ~split_customers(frame["customer_id"])
    ok = _eligible(settings, cat, frame, pd.Timestamp(pop.as_of))
    X = pop.X
    truth = truth_for(settings, frame["customer_id"].to_numpy(), [a.id for a in acts])
    params = {"objective": "regression", "num_leaves": 31, "verbosity": -1, "num_threads": threads, "seed": 0}
    fit = lambda y: lgb.train(params, lgb.Dataset(X[~held], y[~held]), 300).predict(X[held])  # noqa: E731
    up = np.column_stack([fit(truth.uplift[:, j]) for j in range(len(acts))])
    value = fit(truth.value)
    costs = np.array([a.cost for a in acts])
    g = policy.gains(up, value, costs, ok[held])
    d = policy.decide(np.column_stack([g, np.zeros(len(g))]), len(acts))
    gain = truth.uplift[held] * truth.value[held, None] - np.r_[costs, 0.0][None, :]
    return float(np.take_along_axis(gain, d[:, None], axis=1).mean())
