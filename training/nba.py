"""Next-best-action training: uplift models from the randomised campaign log (point-in-time features from Feast),
off-policy evaluation on held-out customers against baselines, one MLflow run, registered as `uplift`."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from features import store as feature_store
from leadscope import catalogue as catalogue_lib
from leadscope.catalogue import Catalogue
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import read_feature_meta, read_table
from training import dataset, policy, tracking
from training.uplift import FITS, SERVICE, UpliftBundle, fit_bundle, split_customers

NAME = "uplift"


def campaign_log(path: Path, settings: Settings) -> pd.DataFrame:
    """A campaign log file (`train nba --labels F`, the columns of the campaigns table), parsed and checked by
    the data contract; ValueError naming the row and column when any row is invalid (nothing trains on it)."""
    from features import files, ingest

    known = set(read_table(settings.raw_dir, "customers", columns=[ENTITY])[ENTITY].astype(str))
    rows, rejects = ingest.validate("campaigns", files.read(path, "campaigns"), file=path.name, known_customers=known)
    if not rejects.empty:
        first = rejects.iloc[0]
        raise ValueError(
            f"{path.name}: {len(rejects)} invalid campaign rows, e.g. row {first['row']} column {first['column']}: "
            f"{first['reason']}"
        )
    return rows


def sample_log(camp: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """At most about `max_rows` rows of a randomised log: whole customers drawn by a stable hash of the id
    (independent of the held-out split's), so a customer's rows stay together. A random share of the customers of
    a randomised trial is a randomised trial: treatment and outcome rates stay unbiased and need no weights.
    attrs["sample_share"] says how much was kept."""
    from training.uplift import split_customers

    share = 1.0 if len(camp) <= max_rows else max_rows / len(camp)
    out = camp if share == 1.0 else camp[split_customers(camp[ENTITY], share, salt="log-sample")]
    out = out.reset_index(drop=True)
    out.attrs["sample_share"] = share
    return out


def logged(
    settings: Settings,
    store: object | None = None,
    camp: pd.DataFrame | None = None,
    *,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Randomised campaign rows with the features each customer had at the time (point in time). `camp`: a
    campaign log given for this training (default: the stored campaigns table). `max_rows`: above it, a share of
    the customers (sample_log) before the features are joined; attrs["sample_share"] and ["log_rows"] say so."""
    camp = read_table(settings.raw_dir, "campaigns") if camp is None else camp
    if "randomized" in camp:
        camp = camp[camp["randomized"].fillna(False).astype(bool)]
    camp = camp.assign(
        ts=pd.to_datetime(camp["ts"], utc=True),
        value=camp["value"].fillna(0.0) if "value" in camp else 0.0,
    )
    meta = read_feature_meta(settings.feature_dir)
    late = camp["ts"] > meta.end + pd.Timedelta(days=settings.feature_cadence_days)
    if late.any():  # their behaviour features would be empty: refused, not trained into zeros
        raise ValueError(
            f"campaigns: ts: {int(late.sum()):,} of {len(camp):,} rows are dated after the data ends "
            f"({meta.end:%Y-%m-%d}); import the events and orders up to then, or leave those rows out"
        )
    camp = camp[camp["ts"] >= meta.start]  # before the first feature cut there is nothing to join
    rows = camp.rename(columns={"ts": TS})[[ENTITY, TS, "action_id", "treated", "outcome", "value"]]
    total = len(rows)
    rows = sample_log(rows, max_rows) if max_rows is not None else rows
    store = store or feature_store.open_store(settings)
    out = dataset.historical_features(store, rows, service=SERVICE)
    out.attrs.update(sample_share=rows.attrs.get("sample_share", 1.0), log_rows=total)
    return out


@dataclass
class Policies:
    """Decisions (column index into actions + nothing) of our policy and the baselines, per row."""

    actions: list[str]
    nothing: int
    chosen: dict[str, np.ndarray]


def decisions(
    bundle: UpliftBundle,
    cat: Catalogue,
    X: np.ndarray,
    ok: np.ndarray,
    *,
    best_single: str | None = None,
    seed: int = 0,
    threads: int = 1,
) -> tuple[Policies, np.ndarray, np.ndarray, np.ndarray]:
    """(policies, uplift [n, A+1], response value [n], baseline P(respond) [n]); A = contact actions."""
    acts = cat.contacts
    ids = [a.id for a in acts]
    up = np.column_stack([bundle.uplift(X, ids, threads), np.zeros(len(X))])
    value = bundle.response_value(X, threads)
    base = bundle.baseline(X, threads)
    costs = np.array([a.cost for a in acts] + [0.0])
    allowed = np.column_stack([ok, np.ones(len(X), bool)])
    nothing = len(acts)
    g = policy.gains(up, value, costs, allowed)
    g[:, nothing] = 0.0
    rng = np.random.default_rng(seed)
    random_pick = np.array([rng.choice(np.flatnonzero(r)) for r in allowed])
    response = np.where(allowed & np.isfinite(up), base[:, None] + np.nan_to_num(up), -np.inf)
    response[:, nothing] = -np.inf
    by_propensity = np.argmax(response, axis=1)
    by_propensity = np.where(np.isfinite(response.max(axis=1)), by_propensity, nothing)
    chosen = {
        "ours": policy.decide(g, nothing),
        "random": random_pick,
        "rank_by_propensity": by_propensity,
        "do_nothing": np.full(len(X), nothing),
    }
    for j, a in enumerate(ids):
        chosen[f"all_{a}"] = np.where(allowed[:, j], j, nothing)
    if best_single is not None:
        chosen["best_single_action"] = chosen[f"all_{best_single}"]
    return Policies(ids + [cat.nothing.id], nothing, chosen), up, value, base


@dataclass
class OpeInputs:
    """What off-policy estimates of our policy and the baselines need besides the log: decisions per row and the
    outcome model's value q[row, decision] (response probability × value − cost)."""

    pol: Policies
    q: np.ndarray
    costs: np.ndarray


def ope_inputs(
    frame: pd.DataFrame, bundle: UpliftBundle, cat: Catalogue, contacts: pd.DataFrame, *, best_single: str | None
) -> OpeInputs:
    acts = cat.contacts
    X = bundle.encoder.transform(frame).astype(np.float32)
    # the log's rows were randomised without cooldowns or caps: eligibility here is consent, reach and stage
    ctx = policy.context(frame, contacts, pd.DataFrame(), acts, pd.Timestamp.now(tz="UTC"))
    ok = policy.eligible(cat, acts, ctx)
    pol, up, value, base = decisions(bundle, cat, X, ok, best_single=best_single)
    costs = np.array([a.cost for a in acts] + [0.0])
    q = (base[:, None] + np.nan_to_num(up)) * value[:, None] - costs[None, :]
    return OpeInputs(pol, q, costs)


def ope_estimates(
    inp: OpeInputs, action_id: np.ndarray, treated: np.ndarray, value: np.ndarray
) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """IPS / DM / DR estimates (with standard errors) of each policy's incremental value per logged row over
    do-nothing; reward = the response's value − the contact's cost. Also which rows could be matched."""
    terms, known = ope_terms(inp, action_id, treated, value)
    # incremental value vs do-nothing, per row on the same rows (so its standard error is the difference's)
    nothing = terms["do_nothing"]
    incremental = {
        name: {k: t[k] - nothing[k] for k in ("ips", "dm", "dr")} | {"matched": t["matched"]}
        for name, t in terms.items()
    }
    return {name: policy.summarise(t) for name, t in incremental.items()}, known


def ope_terms(
    inp: OpeInputs, action_id: np.ndarray, treated: np.ndarray, value: np.ndarray
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Per matched row, each policy's IPS / DM / DR terms (their means are the estimates); rows matched."""
    pol = inp.pol
    logged_d = np.where(treated == 1, pd.Index(pol.actions).get_indexer(action_id), pol.nothing)
    known = logged_d >= 0  # rows of actions the catalogue does not have cannot be matched
    logged_d = np.where(known, logged_d, pol.nothing)
    reward = value - inp.costs[logged_d] * treated
    prop = policy.behaviour_probability(logged_d, len(pol.actions), pol.nothing)
    terms = {
        name: policy.off_policy_terms(d[known], logged_d[known], reward[known], inp.q[known], prop[known])
        for name, d in pol.chosen.items()
    }
    return terms, known


def ope_rows(
    frame: pd.DataFrame, bundle: UpliftBundle, cat: Catalogue, contacts: pd.DataFrame, *, best_single: str | None
) -> tuple[dict[str, dict[str, float]], Policies, np.ndarray]:
    """ope_estimates on the frame's own logged decisions and outcomes."""
    inp = ope_inputs(frame, bundle, cat, contacts, best_single=best_single)
    out, known = ope_estimates(
        inp, frame["action_id"].to_numpy(), frame["treated"].to_numpy(int), frame["value"].to_numpy(float)
    )
    return out, inp.pol, known


def check_log_matches(cat: catalogue_lib.Catalogue, frame: pd.DataFrame, name: str) -> None:
    """The campaign log and the catalogue must name the same actions: a logged action the catalogue lacks would be
    learnt and never offered, a catalogue action never tried would be offered with an effect nobody measured (both
    showed as `+0.000 ± 0.000` and still registered a champion)."""
    logged_ids, known = set(frame["action_id"].astype(str)), {a.id for a in cat.contacts}
    if extra := sorted(logged_ids - known):
        raise catalogue_lib.CatalogueError(
            f"action catalogue {name}: the campaign log has {len(extra)} action(s) it does not list: "
            f"{', '.join(extra[:5])}; add them (LEADSCOPE_ACTIONS_CATALOGUE) or leave them out of the log"
        )
    if untried := sorted(known - logged_ids):
        raise catalogue_lib.CatalogueError(
            f"action catalogue {name}: {len(untried)} action(s) never tried in the campaign log: "
            f"{', '.join(untried[:5])}; their effect cannot be learnt: remove them or log a randomised trial"
        )


def train(
    settings: Settings,
    progress: Callable[[str], None] = lambda _: None,
    frame: pd.DataFrame | None = None,
    log_path: Path | None = None,
) -> dict:
    """Fit, evaluate off-policy and register. The first model becomes `champion`; later ones `challenger`, which
    `leadscope promote uplift` compares with the champion before anything serves it. `frame`: the logged rows
    with their point-in-time features (default: the whole randomised log)."""
    catalogue_path = settings.actions_catalogue or catalogue_lib.DEFAULT
    cat = catalogue_lib.load(catalogue_path)
    progress("point-in-time features of the campaign log")
    if frame is None:
        camp = campaign_log(log_path, settings) if log_path else None
        frame = logged(settings, camp=camp, max_rows=settings.train_max_rows)
    share, log_rows = frame.attrs.get("sample_share", 1.0), frame.attrs.get("log_rows", len(frame))
    if share < 1.0:
        progress(f"{len(frame):,} of {log_rows:,} logged rows ({share:.1%} of the customers, LEADSCOPE_TRAIN_MAX_ROWS)")
    check_log_matches(cat, frame, catalogue_path.name)
    features = feature_store.feature_names(settings, SERVICE)
    is_train = split_customers(frame[ENTITY])
    progress(f"uplift models ({frame['action_id'].nunique()} actions, T-, X- and DR-learner each)")
    bundle = fit_bundle(
        frame[is_train].reset_index(drop=True),
        features,
        threads=settings.num_threads,
        seed=settings.seed,
        workers=settings.fit_workers or os.cpu_count() or 1,
    )
    contacts = read_table(settings.raw_dir, "customers")
    progress("off-policy evaluation on held-out customers")
    # the best single action is chosen on the training customers' rows, then judged on held-out ones
    train_est, _, _ = ope_rows(frame[is_train].reset_index(drop=True), bundle, cat, contacts, best_single=None)
    best_single = max(
        (k.removeprefix("all_") for k in train_est if k.startswith("all_")), key=lambda a: train_est[f"all_{a}"]["dr"]
    )
    held = frame[~is_train].reset_index(drop=True)
    incremental, _, known = ope_rows(held, bundle, cat, contacts, best_single=best_single)
    params = {
        "feature_service": SERVICE,
        "catalogue_sha256": hashlib.sha256(catalogue_path.read_bytes()).hexdigest()[:16],
        "train_rows": int(is_train.sum()),
        "heldout_rows": int(len(held)),
        "log_rows": int(log_rows),
        "log_sample_share": float(share),
        "best_single_action": best_single,
        **{f"learner_{a}": m.kind for a, m in bundle.actions.items()},
    }
    metrics = {f"{a}_{k}": v for a, ms in bundle.metrics.items() for k, v in ms.items()} | {
        f"ope_{p}_{k}": v for p, e in incremental.items() for k, v in e.items() if not p.startswith("all_")
    }
    found = verdict(bundle.metrics, incremental.get("ours", {}))
    run_id, version = _log(settings, bundle, held[bundle.encoder.features].head(2), params, metrics, found)
    alias = tracking.register(settings, NAME, version, SERVICE)
    return {
        "verdict": found,
        "run_id": run_id,
        "version": version,
        "alias": alias,
        "best_single_action": best_single,
        "uplift": bundle.metrics,
        "ope_incremental": {p: e for p, e in incremental.items() if not p.startswith("all_")},
        "heldout_rows": int(known.sum()),
    }


NOISE_SDS = 2.0  # a Qini, or a policy's gain over doing nothing, within this many noise SDs of 0 is not detected


@dataclass(frozen=True)
class Verdict:
    detected: bool
    text: str  # the plain answer printed, logged as the run's `verdict` tag
    actions_above_noise: tuple[str, ...]


def verdict(action_metrics: dict[str, dict[str, float]], ours: dict[str, float]) -> Verdict:
    """Is there uplift to act on? An action counts when its chosen learner's validation Qini is above NOISE_SDS of
    its random-ranking noise floor; the policy counts when its held-out DR gain over doing nothing is above
    NOISE_SDS standard errors."""
    above = tuple(
        a
        for a, m in sorted(action_metrics.items())
        if "learner" in m and m[f"{list(FITS)[int(m['learner'])]}_qini"] > NOISE_SDS * m["qini_noise_sd"]
    )
    gain, se = ours.get("dr", 0.0), ours.get("dr_se", float("nan"))
    interval = f"{gain:+.3f} ± {se:.3f} per contact"
    if np.isfinite(se) and gain > NOISE_SDS * se:
        return Verdict(True, f"uplift detected: the policy gains {interval} over doing nothing", above)
    if np.isfinite(se) and gain < -NOISE_SDS * se:
        return Verdict(False, f"the policy loses {interval} against doing nothing: do nothing", above)
    within = f"the policy's gain over doing nothing, {interval}, is within noise"
    if above:
        text = (
            f"uplift ranks above noise for {', '.join(above)}, but {within}: serve the best single action or do nothing"
        )
        return Verdict(False, text, above)
    return Verdict(False, f"no detectable uplift: serve the best single action or do nothing ({within})", above)


def _log(
    settings: Settings,
    bundle: UpliftBundle,
    example: pd.DataFrame,
    params: dict,
    metrics: dict[str, float],
    found: Verdict,
) -> tuple[str, str]:
    """One MLflow run with the bundle as a pyfunc, registered as a new version of `uplift`: (run id, version)."""
    with (
        mlflow.start_run(experiment_id=tracking.experiment(settings, "nba"), run_name="uplift + policy") as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"verdict": found.text, "uplift_detected": str(found.detected)})
        path = Path(tmp) / "bundle"
        bundle.save(path)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_uplift_entry.py")),
            artifacts={"bundle": str(path)},
            signature=infer_signature(example, UpliftPyfunc.frame(bundle, example)),
            input_example=example,
            pip_requirements=tracking.requirements(),
            registered_model_name=NAME,
        )
    return run.info.run_id, str(info.registered_model_version)


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc face of the bundle: features in, estimated uplift per action out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = UpliftBundle.load(Path(context.artifacts["bundle"]))

    def predict(self, context: object, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.frame(self.model, model_input)

    @staticmethod
    def frame(bundle: UpliftBundle, features: pd.DataFrame) -> pd.DataFrame:
        ids = sorted(bundle.actions)
        return pd.DataFrame(bundle.uplift(bundle.encoder.transform(features), ids), columns=ids)


@dataclass
class Scored:
    """Batch next-best-action over a feature frame: gains [n, A] (-inf where not allowed), inputs behind them."""

    actions: list  # leadscope.catalogue.Action, contact actions in catalogue order
    gains: np.ndarray
    uplift: np.ndarray
    value: np.ndarray
    costs: np.ndarray


def score_frame(
    bundle: UpliftBundle,
    cat: Catalogue,
    frame: pd.DataFrame,
    contacts: pd.DataFrame,
    history: pd.DataFrame,
    as_of: pd.Timestamp,
    threads: int = 1,
) -> Scored:
    acts = cat.contacts
    ctx = policy.context(frame, contacts, history, acts, as_of)
    ok = policy.eligible(cat, acts, ctx)
    X = bundle.encoder.transform(frame).astype(np.float32)
    up = bundle.uplift(X, [a.id for a in acts], threads)
    value = bundle.response_value(X, threads)
    costs = np.array([a.cost for a in acts])
    return Scored(acts, policy.gains(up, value, costs, ok), up, value, costs)


def plan(scored: Scored, budget: float, capacity: dict[str, int], nothing_id: str) -> pd.DataFrame:
    """One row per customer: the allocated action (or do-nothing) under the budget and channel capacities."""
    n, A = scored.gains.shape
    g = np.column_stack([scored.gains, np.zeros(n)])
    costs = np.r_[scored.costs, 0.0]
    channels = [a.channel for a in scored.actions] + ["do_nothing"]
    chosen = policy.allocate(g, costs, channels, budget, capacity, nothing=A)
    ids = [a.id for a in scored.actions] + [nothing_id]
    rows = np.arange(n)
    picked = chosen != A
    return pd.DataFrame(
        {
            "action_id": np.array(ids)[chosen],
            "channel": np.array(channels)[chosen],
            "expected_incremental_value": np.where(picked, g[rows, chosen], 0.0).round(4),
            "uplift": np.where(picked, scored.uplift[rows, np.minimum(chosen, A - 1)], 0.0).round(6),
            "value": scored.value.round(2),
            "cost": costs[chosen],
        }
    )
