"""Next-best-action against the generator's truth: the true incremental value of our policy, the oracle policy
(true uplift, same eligibility) and the baselines, on held-out customers at the newest snapshot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscope import catalogue as catalogue_lib
from leadscope.schema import TS
from leadscope.settings import Settings
from leadscope.tables import read_table
from training import nba, policy, tracking
from training.lookalike import Population
from training.uplift import UpliftBundle, split_customers


@dataclass
class Truth:
    uplift: np.ndarray  # [n, A+1] true uplift per contact action (0 for nothing)
    value: np.ndarray  # [n] true value of a response (the customer's order value)
    base: np.ndarray  # [n] true response probability without a contact


def truth_for(settings: Settings, ids: np.ndarray, action_ids: list[str]) -> Truth:
    """The true effects as of the end of the history (where the newest snapshot is)."""
    return effect_at(settings, ids, None, action_ids)


def effect_at(settings: Settings, ids: np.ndarray, ts: pd.Series | None, action_ids: list[str]) -> Truth:
    """The true uplift of each contact action at each row's own time `ts` (None: the end of the history; a
    retention offer does nothing before the first purchase) as the response probability really moves, kept in
    [0, 1]; the value of a response and the response probability without a contact."""
    truth_dir = settings.raw_dir / "truth"
    raw = pd.read_parquet(truth_dir / "uplift.parquet")
    cust = pd.read_parquet(truth_dir / "customers.parquet").set_index("customer_id")
    up = raw.pivot(index="customer_id", columns="action_id", values="uplift").reindex(index=ids, columns=action_ids)
    base = raw.groupby("customer_id")["base_rate"].first().reindex(ids).fillna(0.0).to_numpy(float)
    matrix = up.fillna(0.0).to_numpy()
    if ts is not None and "after_purchase_only" in raw:  # older truth files have no time-dependent actions
        only = raw.groupby("action_id")["after_purchase_only"].first().reindex(action_ids).fillna(False)
        bought = pd.to_datetime(cust["converted_at"].reindex(ids), utc=True)
        before = (bought.isna() | (pd.to_datetime(pd.Series(ts), utc=True).to_numpy() < bought)).to_numpy()
        matrix = np.where(only.to_numpy(bool)[None, :] & before[:, None], 0.0, matrix)
    matrix = np.clip(base[:, None] + matrix, 0.0, 1.0) - base[:, None]
    return Truth(np.column_stack([matrix, np.zeros(len(ids))]), cust["aov"].reindex(ids).to_numpy(float), base)


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
    bundle = bundle or tracking.load_champion(settings, nba.NAME).model
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
    held, inp, truth = _ope_setup(settings, logged_frame, bundle, best_single)
    gain = truth.uplift * truth.value[:, None] - inp.costs[None, :]
    est, known = nba.ope_estimates(
        inp, held["action_id"].to_numpy(), held["treated"].to_numpy(int), held["value"].to_numpy(float)
    )
    return {
        name: {**{k: est[name][k] for k in ("ips", "ips_se", "dr", "dr_se")}, "true": t}
        for name, t in _true(inp, gain, known).items()
    }


POLICIES = ("ours", "best_single_action", "rank_by_propensity", "random", "do_nothing")


def _ope_setup(
    settings: Settings, logged_frame: pd.DataFrame, bundle: UpliftBundle, best_single: str
) -> tuple[pd.DataFrame, nba.OpeInputs, Truth]:
    cat = catalogue_lib.load(settings.actions_catalogue)
    held = logged_frame[~split_customers(logged_frame["customer_id"])].reset_index(drop=True)
    inp = nba.ope_inputs(held, bundle, cat, read_table(settings.raw_dir, "customers"), best_single=best_single)
    truth = effect_at(settings, held["customer_id"].to_numpy(), held[TS], [a.id for a in cat.contacts])
    return held, inp, truth


def _true(inp: nba.OpeInputs, gain: np.ndarray, known: np.ndarray) -> dict[str, float]:
    return {
        name: float(np.take_along_axis(gain[known], inp.pol.chosen[name][known][:, None], axis=1).mean())
        for name in POLICIES
    }


def ope_replicates(
    settings: Settings,
    logged_frame: pd.DataFrame,
    bundle: UpliftBundle,
    best_single: str,
    replicates: int = 20,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """The off-policy estimators' accuracy beyond one log's luck: the held-out customers' contacts (same people,
    same days, same features) randomised again `replicates` times the way the log was (action and treatment at
    the log's shares), each outcome drawn from the generator's true response probability. Per policy: the true
    value, the mean DR and IPS estimates over the replicates, the spread of one log's DR error, the share of
    single logs within 10 % of the truth, and the DR error of all replicates pooled (one log `replicates` times
    as large)."""
    held, inp, truth = _ope_setup(settings, logged_frame, bundle, best_single)
    gain = truth.uplift * truth.value[:, None] - inp.costs[None, :]
    cat = catalogue_lib.load(settings.actions_catalogue)
    tried = held.loc[held["treated"] == 1, "action_id"].value_counts(normalize=True)
    column = pd.Index([a.id for a in cat.contacts]).get_indexer(tried.index)
    p_treat = float(held["treated"].mean())
    runs = []
    for r in range(replicates):
        rng = np.random.default_rng([seed, r])
        pick = rng.choice(len(tried), len(held), p=tried.to_numpy())
        treated = (rng.random(len(held)) < p_treat).astype(int)
        lift = np.where(column[pick] >= 0, truth.uplift[np.arange(len(held)), np.maximum(column[pick], 0)], 0.0)
        outcome = rng.random(len(held)) < truth.base + treated * lift
        est, known = nba.ope_estimates(inp, tried.index.to_numpy()[pick], treated, outcome * truth.value)
        runs.append((est, _true(inp, gain, known)))
    out = {}
    for name in POLICIES:
        dr = np.array([e[name]["dr"] for e, _ in runs])
        true = np.array([t[name] for _, t in runs])
        if not np.any(true):  # do-nothing against itself: exactly zero, nothing to measure
            out[name] = {"true": 0.0, "dr_mean": float(dr.mean()), "replicates": float(replicates)}
            continue
        err = (dr - true) / np.abs(true)
        out[name] = {
            "true": float(true.mean()),
            "dr_mean": float(dr.mean()),
            "ips_mean": float(np.mean([e[name]["ips"] for e, _ in runs])),
            "dr_se_one_log": float(np.mean([e[name]["dr_se"] for e, _ in runs])),
            "dr_error_sd_one_log": float(np.std(err, ddof=1)) if replicates > 1 else float("nan"),
            "share_within_10pct": float(np.mean(np.abs(err) <= 0.10)),
            "dr_error_pooled": float((dr.mean() - true.mean()) / abs(true.mean())),
            "replicates": float(replicates),
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
