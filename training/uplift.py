"""Uplift per action from the randomised campaign log, and the value of a response.

Three meta-learners on LightGBM per action, compared on a validation split of the training customers (Qini,
AUUC, uplift@30 % and the DR loss, all logged); the DR-learner serves unless `learner` says otherwise:
- T-learner: P(respond | treated with a, x) − P(respond | untreated, x), one classifier per arm;
- X-learner (Künzel et al. 2019): imputed individual effects per arm, one regressor each, blended;
- DR-learner (Kennedy 2020): cross-fitted outcome models per arm, the doubly robust pseudo-outcome
  ψ = μ1 − μ0 + t(y − μ1)/e − (1 − t)(y − μ0)/(1 − e), regressed on x. How many boosting rounds that regression
  gets is chosen by cross-validation over customers on ψ itself (E[ψ | x] is the uplift, so ψ's held-out squared
  error ranks uplift models like their true error does, up to a constant). Effects of a few points drown in the
  noise of single outcomes: the chosen models stay close to the action's mean effect unless the data say more.
Why the DR-learner by default, not the best on validation: with effects this small every validation criterion is
noisy. Picking by Qini (order only) or by the DR loss (mean (ψ − τ̂(x))² on the validation customers) chose the
untuned T-learner for an action now and then, and each such pick cost true policy value on the default company
(by Qini: 0.833 × the oracle's true value vs 0.857 with the DR-learner throughout). `learner="auto"` picks by
the DR loss.
The control arm is pooled over actions (an untreated row is "do nothing" whichever action it was drawn for).
Written here on LightGBM's own API: scikit-uplift (used for the metrics: Qini, AUUC, uplift@k) has T- and
S-learners but no X- or DR-learner, and pickles its estimators; these keep every booster as text.

A response is worth one order in the log (`value`); the response-value model estimates it per customer.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklift.metrics import qini_auc_score, uplift_at_k, uplift_auc_score

from training.scorer import Encoder

SERVICE = "uplift_v1"
CLASSIFIER = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 4,  # small trees: effects of a few points drown in Bernoulli noise; bigger trees fit the noise
    "min_data_in_leaf": 200,  # (measured on the default company: 15 leaves lost a quarter of the policy value)
    "lambda_l2": 10.0,
    "feature_fraction": 0.8,
    "verbosity": -1,
    "deterministic": True,
    "force_row_wise": True,
}
REGRESSOR = {**CLASSIFIER, "objective": "regression", "min_data_in_leaf": 500}
ROUNDS = 200
MAX_ROUNDS = 1000  # the DR-learner's regression: at most this many rounds, as many as cross-validation supports
CV_FOLDS = 3


def _fit(params: dict, X: np.ndarray, y: np.ndarray, cats: list[int], threads: int, seed: int) -> lgb.Booster:
    data = lgb.Dataset(X, y, categorical_feature=cats, free_raw_data=True)
    return lgb.train({**params, "num_threads": threads, "seed": seed}, data, ROUNDS)


def _p(b: lgb.Booster, X: np.ndarray, threads: int) -> np.ndarray:
    return b.predict(X, num_threads=threads)


@dataclass
class ActionModel:
    """One action's uplift model: T-learner [μ1, μ0], X-learner [τ0, τ1] blended by `weight`, DR-learner [τ]."""

    kind: str
    boosters: list[lgb.Booster]
    weight: float = 0.0  # X-learner: the share of treated rows, the weight of τ0

    def uplift(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        if self.kind == "t_learner":
            return _p(self.boosters[0], X, threads) - _p(self.boosters[1], X, threads)
        if self.kind == "x_learner":
            return self.weight * _p(self.boosters[0], X, threads) + (1 - self.weight) * _p(self.boosters[1], X, threads)
        return _p(self.boosters[0], X, threads)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions to the uplift (TreeSHAP): for the T-learner the treated arm's log-odds
        contributions minus the control arm's (a direction, not a probability); the others are additive."""
        c = [b.predict(X, pred_contrib=True, num_threads=1)[:, :-1] for b in self.boosters]
        if self.kind == "t_learner":
            return c[0] - c[1]
        if self.kind == "x_learner":
            return self.weight * c[0] + (1 - self.weight) * c[1]
        return c[0]


@dataclass
class Control:
    """The pooled control arm: in a randomised log an untreated row is "do nothing" whatever action it was drawn
    for, so every action's control arm is all of them. Its outcome models are therefore the same for every action
    and fitted once here, not once per action: μ0 on the whole arm, and the DR-learner's two cross-fitting halves
    with their out-of-fold predictions on the arm's own rows."""

    X: np.ndarray
    y: np.ndarray
    folds: np.ndarray  # customer_folds of each row
    mu0: lgb.Booster  # fitted on X, y
    _halves: list[lgb.Booster] = field(default_factory=list)
    _cross: np.ndarray | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # actions fitted side by side share the arm

    def cross_fitted(self, cats: list[int], threads: int, seed: int) -> tuple[list[lgb.Booster], np.ndarray]:
        """μ0 fitted on each cross-fitting half's complement (the rows with folds % 2 != f), and each row's
        prediction by the model that did not see it. Fitted once, by whichever action asks first."""
        with self._lock:
            return self._cross_fitted(cats, threads, seed)

    def _cross_fitted(self, cats: list[int], threads: int, seed: int) -> tuple[list[lgb.Booster], np.ndarray]:
        if self._cross is None:
            half = self.folds % 2
            cross = np.zeros(len(self.y))
            for f in (0, 1):
                b = _fit(CLASSIFIER, self.X[half != f], self.y[half != f], cats, threads, seed)
                cross[half == f] = _p(b, self.X[half == f], threads)
                self._halves.append(b)
            self._cross = cross
        return self._halves, self._cross


@dataclass
class Arms:
    """One action's treated rows next to the pooled control arm (shared by every action's Arms)."""

    X1: np.ndarray
    y1: np.ndarray
    f1: np.ndarray  # customer_folds of each row
    control: Control
    _mu1: lgb.Booster | None = None

    @property
    def X0(self) -> np.ndarray:
        return self.control.X

    @property
    def y0(self) -> np.ndarray:
        return self.control.y

    @property
    def mu0(self) -> lgb.Booster:
        return self.control.mu0

    @property
    def share(self) -> float:
        return len(self.y1) / (len(self.y1) + len(self.y0))

    def mu1(self, cats: list[int], threads: int, seed: int) -> lgb.Booster:
        """P(respond | treated with this action, x) on the whole treated arm (the T- and X-learner's, fitted once)."""
        if self._mu1 is None:
            self._mu1 = _fit(CLASSIFIER, self.X1, self.y1, cats, threads, seed)
        return self._mu1


def fit_t(arms: Arms, cats: list[int], threads: int, seed: int) -> ActionModel:
    return ActionModel("t_learner", [arms.mu1(cats, threads, seed), arms.mu0])


def fit_x(arms: Arms, cats: list[int], threads: int, seed: int) -> ActionModel:
    """Künzel et al. 2019: imputed effects y − μ0(x) on treated rows and μ1(x) − y on control rows, one
    regressor each, blended by the treated share (the small treated arm leans on the well-fitted μ0)."""
    mu1 = arms.mu1(cats, threads, seed)
    tau1 = _fit(REGRESSOR, arms.X1, arms.y1 - _p(arms.mu0, arms.X1, threads), cats, threads, seed)
    tau0 = _fit(REGRESSOR, arms.X0, _p(mu1, arms.X0, threads) - arms.y0, cats, threads, seed)
    return ActionModel("x_learner", [tau0, tau1], weight=arms.share)


def fit_dr(arms: Arms, cats: list[int], threads: int, seed: int) -> ActionModel:
    """Kennedy 2020: cross-fitted outcome models, the doubly robust pseudo-outcome, regressed on x."""
    halves, mu0_control = arms.control.cross_fitted(cats, threads, seed)
    half1, half0 = arms.f1 % 2, arms.control.folds % 2
    mu1_treated, mu0_treated = np.zeros(len(arms.y1)), np.zeros(len(arms.y1))
    mu1_control = np.zeros(len(arms.y0))
    for f in (0, 1):
        seen, unseen = half1 != f, half1 == f
        mu1 = _fit(CLASSIFIER, arms.X1[seen], arms.y1[seen], cats, threads, seed)
        mu1_treated[unseen] = _p(mu1, arms.X1[unseen], threads)
        mu1_control[half0 == f] = _p(mu1, arms.X0[half0 == f], threads)
        mu0_treated[unseen] = _p(halves[f], arms.X1[unseen], threads)
    X = np.vstack([arms.X1, arms.X0])
    y = np.r_[arms.y1, arms.y0]
    t = np.r_[np.ones(len(arms.y1)), np.zeros(len(arms.y0))]
    folds = np.r_[arms.f1, arms.control.folds]
    psi = pseudo_outcome(y, t, np.r_[mu1_treated, mu1_control], np.r_[mu0_treated, mu0_control], arms.share)
    params = {**REGRESSOR, "num_threads": threads, "seed": seed}
    splits = [(np.flatnonzero(folds % CV_FOLDS != k), np.flatnonzero(folds % CV_FOLDS == k)) for k in range(CV_FOLDS)]
    data = lgb.Dataset(X, psi, categorical_feature=cats, free_raw_data=False)
    cv = lgb.cv(params, data, MAX_ROUNDS, folds=splits, callbacks=[lgb.early_stopping(30, verbose=False)])
    rounds = len(cv["valid l2-mean"])
    return ActionModel("dr_learner", [lgb.train(params, data, rounds)])


def pseudo_outcome(y: np.ndarray, t: np.ndarray, mu1: np.ndarray, mu0: np.ndarray, e: float) -> np.ndarray:
    """The doubly robust pseudo-outcome: unbiased for the uplift at x when e is the true treatment probability
    (here it is: the log is randomised), whatever the outcome models' errors."""
    return mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)


FITS = {"t_learner": fit_t, "x_learner": fit_x, "dr_learner": fit_dr}


def uplift_metrics(y: np.ndarray, uplift: np.ndarray, t: np.ndarray) -> dict[str, float]:
    with warnings.catch_warnings():  # scikit-uplift calls a helper scikit-learn 1.8 deprecates, once per curve
        warnings.filterwarnings("ignore", message=".*stable_cumsum.*", category=FutureWarning)
        return _uplift_metrics(y, uplift, t)


def _uplift_metrics(y: np.ndarray, uplift: np.ndarray, t: np.ndarray) -> dict[str, float]:
    return {
        "qini": float(qini_auc_score(y, uplift, t)),
        "auuc": float(uplift_auc_score(y, uplift, t)),
        "uplift_at_30": float(uplift_at_k(y, uplift, t, strategy="overall", k=0.3)),
    }


@dataclass
class UpliftBundle:
    """Everything next-best-action scores with: encoder, per-action uplift models, the control response model
    (baseline P(respond)), the response-value model."""

    encoder: Encoder
    actions: dict[str, ActionModel]
    control: lgb.Booster
    value: lgb.Booster
    treat_share: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    feature_service: str = SERVICE

    def uplift(self, X: np.ndarray, action_ids: list[str], threads: int = 1) -> np.ndarray:
        """[n, len(action_ids)] estimated uplift; NaN for actions without a model (never recommended)."""
        out = np.full((len(X), len(action_ids)), np.nan)
        for j, a in enumerate(action_ids):
            if a in self.actions:
                out[:, j] = self.actions[a].uplift(X, threads)
        return out

    def response_value(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        return np.maximum(_p(self.value, X, threads), 0.0)

    def baseline(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        return _p(self.control, X, threads)

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "features": self.encoder.features,
            "categories": self.encoder.categories,
            "actions": {
                a: {"kind": m.kind, "boosters": len(m.boosters), "weight": m.weight} for a, m in self.actions.items()
            },
            "treat_share": self.treat_share,
            "metrics": self.metrics,
            "feature_service": self.feature_service,
        }
        (path / "bundle.json").write_text(json.dumps(meta))
        self.control.save_model(str(path / "control.txt"))
        self.value.save_model(str(path / "value.txt"))
        for a, m in self.actions.items():
            for i, b in enumerate(m.boosters):
                b.save_model(str(path / f"{a}.{i}.txt"))

    @classmethod
    def load(cls, path: Path) -> UpliftBundle:
        meta = json.loads((path / "bundle.json").read_text())
        booster = lambda name: lgb.Booster(model_file=str(path / name))  # noqa: E731
        return cls(
            encoder=Encoder(meta["features"], meta["categories"]),
            actions={
                a: ActionModel(m["kind"], [booster(f"{a}.{i}.txt") for i in range(m["boosters"])], m["weight"])
                for a, m in meta["actions"].items()
            },
            control=booster("control.txt"),
            value=booster("value.txt"),
            treat_share=meta["treat_share"],
            metrics=meta["metrics"],
            feature_service=meta["feature_service"],
        )


def split_customers(ids: pd.Series, share: float = 0.7, salt: str = "heldout") -> np.ndarray:
    """True for training customers: a stable hash of the id, so a customer's rows never straddle the split
    (the salt makes a second split independent of the first)."""
    h = ids.map(lambda c: int(hashlib.sha256(f"{salt}:{c}".encode()).hexdigest()[:8], 16) / 16**8)
    return (h < share).to_numpy()


def customer_folds(ids: pd.Series) -> np.ndarray:
    """A stable number 0 … 2·CV_FOLDS − 1 per row by its customer's id, so a customer's rows never straddle
    folds: `% CV_FOLDS` is the cross-validation fold, `% 2` the cross-fitting half (independent of it)."""
    h = ids.map(lambda c: int(hashlib.sha256(f"folds:{c}".encode()).hexdigest()[:8], 16))
    return (h % (2 * CV_FOLDS)).to_numpy()


def _compare_learners(
    arms: Arms,
    X: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    val_rows: np.ndarray,
    val_control_rows: np.ndarray,
    cats: list[int],
    threads: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Every learner fitted on `arms`, judged on held-out rows: the DR loss on this action's held-out treated rows
    and all held-out control rows; Qini, AUUC and uplift@30 % on the treated rows and as many control rows."""
    val = np.flatnonzero(val_rows | val_control_rows)
    mu1_fit = arms.mu1(cats, threads, seed)
    psi = pseudo_outcome(
        y[val], t[val], _p(mu1_fit, X[val], threads), _p(arms.mu0, X[val], threads), float(t[val].mean())
    )
    val_control = np.flatnonzero(val_control_rows)
    val_control = val_control[np.random.default_rng(seed).permutation(len(val_control))[: val_rows.sum()]]
    balanced = np.r_[np.flatnonzero(val_rows), val_control]
    at = np.searchsorted(val, balanced)  # the balanced rows are among the validation rows
    found = {}
    for kind, fit in FITS.items():
        u = fit(arms, cats, threads, seed).uplift(X[val], threads)
        found[kind] = uplift_metrics(y[balanced], u[at], t[balanced])
        found[kind]["dr_loss"] = float(np.mean((psi - u) ** 2))
    found["noise"] = {"qini_sd": qini_noise_sd(y[balanced], t[balanced], seed)}
    return found


NOISE_DRAWS = 100


def qini_noise_sd(y: np.ndarray, t: np.ndarray, seed: int, draws: int = NOISE_DRAWS) -> float:
    """The Qini's noise floor on these rows: its standard deviation over random rankings (a model that knows
    nothing scores 0 ± this). A Qini within about two of these is indistinguishable from guessing: on a real
    randomised e-mail experiment a printed +0.095 flipped sign on a held-out split."""
    rng = np.random.default_rng(seed)
    return float(np.std([uplift_metrics(y, rng.random(len(y)), t)["qini"] for _ in range(draws)], ddof=1))


def fit_bundle(
    frame: pd.DataFrame,
    features: list[str],
    *,
    threads: int = 1,
    seed: int = 0,
    validation: float = 0.25,
    learner: str = "dr_learner",
    workers: int = 1,
) -> UpliftBundle:
    """frame: logged rows (customer_id, action_id, treated, outcome, value) with point-in-time features.
    `workers`: actions fitted side by side on this many threads (LightGBM lets go of the interpreter while it
    bins and boosts), each fit with `threads`; every booster is the one a single worker fits (each fit is seeded
    and deterministic on its own rows), so the bundle does not depend on it (tests/training/test_nba.py)."""
    if learner != "auto" and learner not in FITS:
        raise ValueError(f"learner must be auto or one of {sorted(FITS)}, not {learner!r}")
    encoder = Encoder.fit(frame, features)
    X = encoder.transform(frame).astype(np.float32)
    cats = encoder.categorical_indices
    y, t = frame["outcome"].to_numpy(float), frame["treated"].to_numpy(float)
    inner = split_customers(frame["customer_id"], 1.0 - validation, salt="validation")
    folds = customer_folds(frame["customer_id"])
    control_rows = t == 0
    fit_control, all_control = control_rows & inner, control_rows
    actions = frame["action_id"].to_numpy()
    responders = y == 1

    def one(action: str) -> tuple[ActionModel | None, dict[str, float]]:
        treated = (actions == action) & (t == 1)
        fit_rows, val_rows = treated & inner, treated & ~inner
        if min(fit_rows.sum(), val_rows.sum()) < 50:
            return None, {"skipped_too_few_rows": float(treated.sum())}
        arms = Arms(X[fit_rows], y[fit_rows], folds[fit_rows], inner_arm)
        found = _compare_learners(arms, X, y, t, val_rows, control_rows & ~inner, cats, threads, seed)
        noise = found.pop("noise")
        best = min(found, key=lambda k: found[k]["dr_loss"]) if learner == "auto" else learner
        arms = Arms(X[treated], y[treated], folds[treated], whole_arm)
        return FITS[best](arms, cats, threads, seed), {
            f"{k}_{m}": v for k, ms in found.items() for m, v in ms.items()
        } | {
            "learner": float(list(FITS).index(best)),
            "treated_rows": float(treated.sum()),
            "qini_noise_sd": noise["qini_sd"],
        }

    models, metrics = {}, {}
    names = sorted(frame["action_id"].unique())
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="uplift-fit") as pool:
        # the fits every action depends on start first: the pooled control arm's outcome models, then its
        # cross-fitted halves (every DR-learner waits for them); the response-value model depends on nothing
        mu0 = [pool.submit(_fit, CLASSIFIER, X[r], y[r], cats, threads, seed) for r in (fit_control, all_control)]
        value_fit = pool.submit(
            _fit,
            REGRESSOR | {"min_data_in_leaf": 50},
            X[responders],
            frame["value"].to_numpy(float)[responders],
            cats,
            threads,
            seed,
        )
        inner_arm = Control(X[fit_control], y[fit_control], folds[fit_control], mu0[0].result())
        whole_arm = Control(X[all_control], y[all_control], folds[all_control], mu0[1].result())
        shared = [inner_arm, *([whole_arm] if learner in ("auto", "dr_learner") else [])]
        ahead = [pool.submit(arm.cross_fitted, cats, threads, seed) for arm in shared] if names else []
        for action, (model, found) in zip(names, pool.map(one, names), strict=True):  # in order, as one worker
            if model is not None:
                models[action] = model
            metrics[action] = found
        for done in ahead:
            done.result()
        value = value_fit.result()
    control = whole_arm.mu0
    return UpliftBundle(encoder, models, control, value, float(t.mean()), metrics)
