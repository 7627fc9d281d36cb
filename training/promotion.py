"""Champion/challenger: promote a challenger only when it is not worse on the same latest holdout and passes
health gates (enough positives, a sane AUC band, no drifted feature). Every decision says why."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features import store as feature_store
from leadscope.schema import TS
from leadscope.settings import Settings
from training import dataset, tracking

TOLERANCE = 0.005  # AUC the challenger may lose to the champion (noise of one holdout)
MAX_PSI = 0.25  # population stability index above which a feature has drifted
AUC_BAND = (0.55, 0.98)  # below: useless; above: on this kind of data, a sign of label leakage
MIN_POSITIVES = 30


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Decision:
    name: str
    champion: str
    challenger: str
    promoted: bool = False
    checks: list[Check] = field(default_factory=list)


def psi(expected: pd.Series, actual: pd.Series, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected` (decile bins of expected; NaN its own bin).
    Written here because the formula is two lines and no maintained package in our stack exposes it."""
    if not pd.api.types.is_numeric_dtype(expected):
        e, a = expected.astype("string").fillna("<NA>"), actual.astype("string").fillna("<NA>")
        cats = sorted(set(e) | set(a))
        pe = e.value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy()
        pa = a.value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy()
    else:
        # 2 significant digits first: a point mass (e.g. every lead without followers shares one PageRank)
        # that moves by 0.1 % must not jump a bin edge and read as drift
        expected, actual = (
            _round_sig(expected.to_numpy(float)).to_numpy(),
            _round_sig(actual.to_numpy(float)).to_numpy(),
        )
        edges = np.unique(np.nanquantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))

        def share(v: np.ndarray) -> np.ndarray:
            idx = np.where(np.isnan(v), len(edges) + 1, np.searchsorted(edges, v, side="right"))
            return np.bincount(idx.astype(int), minlength=len(edges) + 2) / max(len(v), 1)

        pe, pa = share(expected), share(actual)
    pe, pa = np.clip(pe, 1e-4, None), np.clip(pa, 1e-4, None)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def _round_sig(v: np.ndarray, digits: int = 2) -> pd.Series:
    mag = np.floor(np.log10(np.abs(np.where(v == 0, 1.0, v))))
    return pd.Series(np.round(v / 10**mag, digits - 1) * 10**mag)


def _labels(settings: Settings, name: str, labels_path: Path | None = None) -> pd.DataFrame:
    """The outcomes both models are judged on: a labels file, else the imported labels for the model, else the
    built-in definition (propensity, churn)."""
    from training.labels import own_labels, stored_labels

    if labels_path is not None:
        return own_labels(labels_path, settings)
    if (stored := stored_labels(settings, name)) is not None:
        return stored
    if name == "propensity":
        return dataset.conversion_labels(settings, horizon_days=settings.propensity_horizon_days)
    if name == "churn":
        from training import churn

        return churn.churn_labels(settings)
    raise ValueError(f"{name}: no outcomes to judge on; give them with --labels (newer than those it trained on)")


def evaluate(
    settings: Settings,
    name: str,
    *,
    tolerance: float = TOLERANCE,
    max_psi: float = MAX_PSI,
    labels_path: Path | None = None,
) -> Decision:
    champ = tracking.load_champion(settings, name)
    chall = tracking.load_champion(settings, name, tracking.CHALLENGER)
    decision = Decision(name, champ.version, chall.version)
    labels = _labels(settings, name, labels_path)
    latest = labels[TS].max()
    holdout = labels[labels[TS] == latest]
    store = feature_store.open_store(settings)
    auc = {}
    frames = {}
    for role, m in (("champion", champ), ("challenger", chall)):
        frames[role] = dataset.historical_features(store, holdout, service=m.feature_service)
        p = m.model.probability(m.model.encoder.transform(frames[role]))
        auc[role] = float(roc_auc_score(holdout["label"], p))
    positives = int(holdout["label"].sum())
    lo, hi = AUC_BAND
    decision.checks += [
        Check(
            "enough positives", positives >= MIN_POSITIVES, f"{positives} positives in the holdout ({latest.date()})"
        ),
        Check("AUC in a sane band", lo <= auc["challenger"] <= hi, f"challenger ROC-AUC {auc['challenger']:.4f}"),
        Check(
            "not worse than champion",
            auc["challenger"] >= auc["champion"] - tolerance,
            f"challenger {auc['challenger']:.4f} vs champion {auc['champion']:.4f} (tolerance {tolerance})",
        ),
    ]
    # reference: the last month the model trained on; cumulative features (tenure, totals, community size)
    # grow over the whole history, so comparing with all of it would flag growth as drift
    recent = sorted(labels[TS].unique())[-5:-1]
    earlier = labels[labels[TS].isin(recent)]
    earlier = earlier.sample(min(20_000, len(earlier)), random_state=0)
    train_frame = dataset.historical_features(store, earlier, service=chall.feature_service)
    drift = {f: psi(train_frame[f], frames["challenger"][f]) for f in chall.model.encoder.features}
    worst = max(drift, key=drift.get)
    decision.checks.append(
        Check("no drifted feature", drift[worst] <= max_psi, f"largest PSI {drift[worst]:.3f} ({worst})")
    )
    return decision


MAX_LOSS_SE = 2.0  # uplift: a challenger whose policy is worse by more than this many paired standard errors
MIN_MATCHED = 200  # uplift: held-out contacts where the challenger's choice was the logged one


def evaluate_uplift(settings: Settings, *, max_loss_se: float = MAX_LOSS_SE) -> Decision:
    """Both uplift models' policies valued on the same held-out customers' randomised contacts (doubly robust,
    incremental over do-nothing); the difference is taken row by row, so its standard error is the pair's."""
    from leadscope import catalogue as catalogue_lib
    from leadscope.tables import read_table
    from training import nba
    from training.uplift import split_customers

    champ_c = tracking.load_champion(settings, nba.NAME)
    champ_v, champ = champ_c.version, champ_c.model
    chall_c = tracking.load_champion(settings, nba.NAME, tracking.CHALLENGER)
    chall_v, chall = chall_c.version, chall_c.model
    decision = Decision(nba.NAME, champ_v, chall_v)
    cat = catalogue_lib.load(settings.actions_catalogue)
    frame = nba.logged(settings, max_rows=settings.train_max_rows)  # the same customers training kept
    held = frame[~split_customers(frame["customer_id"])].reset_index(drop=True)
    contacts = read_table(settings.raw_dir, "customers")
    terms, matched, best_single, single = {}, 0, 0.0, ""
    for role, bundle in (("champion", champ), ("challenger", chall)):
        inp = nba.ope_inputs(held, bundle, cat, contacts, best_single=None)
        t, known = nba.ope_terms(
            inp, held["action_id"].to_numpy(), held["treated"].to_numpy(int), held["value"].to_numpy(float)
        )
        terms[role] = t["ours"]["dr"] - t["do_nothing"]["dr"]
        if role == "challenger":
            matched = int(t["ours"]["matched"].sum())
            single, best_single, judged = _best_single(t, held["customer_id"][known])
    diff = terms["challenger"] - terms["champion"]
    se = float(np.std(diff, ddof=1) / np.sqrt(len(diff)))
    value = {r: float(np.mean(terms[r])) for r in ("champion", "challenger")}
    decision.checks += [
        Check(
            "enough held-out contacts",
            matched >= MIN_MATCHED,
            f"{matched} logged contacts match the challenger's choice",
        ),
        Check(
            "pays over doing nothing",
            value["challenger"] > 0,
            f"challenger's value per contact {value['challenger']:+.3f} (DR, vs do-nothing)",
        ),
        Check(
            "not worse than champion",
            float(diff.mean()) >= -max_loss_se * se,
            f"challenger {value['challenger']:+.3f} vs champion {value['champion']:+.3f}: "
            f"difference {diff.mean():+.3f} ± {se:.3f} (allowed loss {max_loss_se} SE)",
        ),
        Check(
            "beats the best single action",
            judged > best_single,
            f"{judged:+.3f} vs {best_single:+.3f} for {single} for everyone (picked on half of the held-out "
            "customers, both judged on the other half)",
        ),
    ]
    return decision


def _best_single(t: dict[str, dict[str, np.ndarray]], ids: pd.Series) -> tuple[str, float, float]:
    """(the best one-action-for-everyone policy, its value, the challenger's value): the action is picked on half
    of the held-out customers and both are valued on the other half, so a challenger whose policy is that one
    action is not refused for losing to the winner of the same rows' noise."""
    from training.uplift import split_customers

    pick = split_customers(ids.reset_index(drop=True), 0.5, salt="best-single")
    nothing = t["do_nothing"]["dr"]
    singles = {k.removeprefix("all_"): v["dr"] - nothing for k, v in t.items() if k.startswith("all_")}
    best = max(singles, key=lambda a: float(np.mean(singles[a][pick])))
    ours = t["ours"]["dr"] - nothing
    return best, float(np.mean(singles[best][~pick])), float(np.mean(ours[~pick]))


VALUE_TOLERANCE = 0.02  # value: share of the champion's MAE the challenger may add (noise of one holdout)
MIN_PAYERS = 30


def evaluate_value(settings: Settings, *, tolerance: float = VALUE_TOLERANCE) -> Decision:
    """Both value models on each horizon's latest snapshot with a complete window (held out of training: the
    training split ends before it): mean absolute error of expected spend against what was really spent."""
    from training import value

    champ = tracking.load_champion(settings, "value")
    chall = tracking.load_champion(settings, "value", tracking.CHALLENGER)
    decision = Decision("value", champ.version, chall.version)
    store = feature_store.open_store(settings)
    common = sorted(set(champ.model.horizons) & set(chall.model.horizons))
    decision.checks.append(
        Check(
            "a horizon to compare",
            bool(common),
            f"champion {champ.model.horizons} d, challenger {chall.model.horizons} d",
        )
    )
    for h in common:
        labels = value.value_labels(settings, h)
        latest = labels[TS].max()
        holdout = labels[labels[TS] == latest].reset_index(drop=True)
        mae = {}
        for role, m in (("champion", champ), ("challenger", chall)):
            frame = dataset.historical_features(store, holdout, service=m.feature_service)
            pred = m.model.predict(m.model.encoder.transform(frame))[h]
            mae[role] = float(np.mean(np.abs(frame["label"].to_numpy(float) - pred)))
        decision.checks += [
            Check(f"enough payers ({h} d)", len(holdout) >= MIN_PAYERS, f"{len(holdout)} payers on {latest.date()}"),
            Check(
                f"not worse than champion ({h} d)",
                mae["challenger"] <= mae["champion"] * (1 + tolerance),
                f"MAE challenger {mae['challenger']:.2f} vs champion {mae['champion']:.2f} (tolerance {tolerance:.0%})",
            ),
        ]
    return decision


def promote(settings: Settings, name: str, **kw: object) -> Decision:
    """Move `champion` to the challenger when every check passes; the old champion keeps `previous`."""
    evaluators = {"uplift": evaluate_uplift, "value": evaluate_value}
    decision = evaluators[name](settings, **kw) if name in evaluators else evaluate(settings, name, **kw)
    client = tracking.configure(settings)
    passed = all(c.passed for c in decision.checks)
    try:  # the decision stays readable in the registry (the console's model card)
        client.set_model_version_tag(
            name,
            decision.challenger,
            "promotion_decision",
            json.dumps(
                {
                    "promoted": passed,
                    "champion": str(decision.champion),
                    "at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "checks": [{"name": c.name, "passed": bool(c.passed), "detail": c.detail} for c in decision.checks],
                }
            ),
        )
    except Exception as exc:  # noqa: BLE001 - the decision itself stands; only its record is missing
        logging.getLogger("leadscope.training").warning("promotion decision not recorded: %s", type(exc).__name__)
    if passed:
        client.set_registered_model_alias(name, "previous", decision.champion)
        client.set_registered_model_alias(name, tracking.CHAMPION, decision.challenger)
        client.delete_registered_model_alias(name, tracking.CHALLENGER)
        decision.promoted = True
    return decision
