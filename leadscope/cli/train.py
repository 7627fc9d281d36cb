"""`leadscope train …`, `leadscope promote` and `leadscope monitor`: models into MLflow, gates, drift.

On generated data the generator's truth is handed to training as an oracle (evaluation only), so the printed
figures compare each model with the best possible one; on a company's own data there is none and nothing of it
runs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from leadscope.cli.common import console, fail, settings, step
from leadscope.schema import CLASSIFIERS, MODELS
from leadscope.settings import Settings

train_app = typer.Typer(help="Train a model and register it in MLflow.", no_args_is_help=True)
Classifier = StrEnum("Classifier", {m: m for m in CLASSIFIERS})
NoChampion = Annotated[
    bool, typer.Option(help="Register as challenger even if no champion exists (first model: champion).")
]


Check = Annotated[
    bool, typer.Option("--check", help="Print the data sufficiency report (rows, positives, split, coverage) and stop.")
]
Exclude = Annotated[
    str | None,
    typer.Option(help="Features the model must not use, comma-separated (e.g. country,age); logged with the run."),
]
ColdStart = Annotated[
    bool,
    typer.Option(
        "--cold-start",
        help="Below the data minimums, train a simple regularised model tagged cold_start instead of refusing.",
    ),
]
WindowDays = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Your labels' outcome window in days (label = within N days of as_of): the time split then keeps "
        "training windows out of the test period.",
    ),
]
FairnessBy = Annotated[
    str | None,
    typer.Option(help="More attributes to summarise score and calibration by (excluded ones always are)."),
]


def _options(
    exclude: str | None, fairness_by: str | None, cold_start: bool = False, window_days: int | None = None
) -> dict[str, object]:
    from leadscope.cli.common import split_list

    out: dict[str, object] = {"exclude": tuple(split_list(exclude)), "fairness_by": tuple(split_list(fairness_by))}
    return out | {"cold_start": cold_start, "window_days": window_days}


def _report(m: dict) -> None:
    for line in m.get("sufficiency", []):
        console.print(f"  {line}", soft_wrap=True, highlight=False)
    if m.get("cold_start_limits"):
        console.print(f"  [yellow]{m['cold_start_limits']}[/]", soft_wrap=True, highlight=False)
    for attr, rows in m.get("fairness", {}).items():
        gaps = ", ".join(f"{r['group']} {r['mean_score']:.3f} (gap {r['calibration_gap']:+.3f})" for r in rows[:6])
        console.print(f"  fairness by {attr} (mean score, calibration gap): {gaps}", soft_wrap=True, highlight=False)


def _checked(m: dict) -> bool:
    """Print the report of a --check run; exit 2 when it finds too little data."""
    if not m.get("checked"):
        return False
    _report(m)
    if m["problems"]:
        raise typer.Exit(2)
    console.print("  enough data to train")
    return True


def _oracle_line(m: dict) -> str:
    return f" (oracle {m['oracle_roc_auc']:.4f}, ratio {m['auc_vs_oracle']:.3f})" if "oracle_roc_auc" in m else ""


def _split_line(m: dict) -> str:
    how = (
        "by time (the latest snapshots held out)"
        if m.get("split") == "time"
        else ("by customer, stratified by label (too few snapshots for a time split)")
    )
    return f"{how}; {m.get('heldout_share', 0):.0%} of the rows held back for validation and test"


def train_propensity_model(
    s: Settings, *, set_champion: bool | None, labels: Path | None = None, check: bool = False, **options: tuple
) -> None:
    from training import oracle, propensity

    with step("checking the propensity data" if check else "training the propensity model") as update:
        m = propensity.train(
            s,
            progress=update,
            set_champion=set_champion,
            labels_path=labels,
            oracle=oracle.for_propensity(s),
            check_only=check,
            **options,
        )
    if _checked(m):
        return
    _report(m)
    graph = (
        f"; without graph features {m['roc_auc_without_graph']:.4f} (gain {m['graph_roc_auc_gain']:+.4f})"
        if "graph_roc_auc_gain" in m
        else ""
    )
    console.print(
        f"  {m['feature_service']}: holdout ROC-AUC {m['roc_auc']:.4f}{_oracle_line(m)}, PR-AUC {m['pr_auc']:.4f}, "
        f"lift@10% {m['lift_top_decile']:.2f}{graph}; registered propensity v{m['version']} as {m['alias']}",
        soft_wrap=True,
    )
    console.print(f"  split: {_split_line(m)}", soft_wrap=True)


def train_churn_model(
    s: Settings, *, set_champion: bool | None, labels: Path | None = None, check: bool = False, **options: tuple
) -> None:
    from training import churn, oracle

    what = "your labels" if labels else f"{s.churn_definition}, {s.churn_horizon_days} d"
    with step(f"{'checking' if check else 'training'} the churn model ({what})") as update:
        m = churn.train(
            s,
            progress=update,
            set_champion=set_champion,
            oracle=oracle.for_churn(s),
            labels_path=labels,
            check_only=check,
            **options,
        )
    if _checked(m):
        return
    _report(m)
    console.print(
        f"  {m['feature_service']}: holdout ROC-AUC {m['roc_auc']:.4f}{_oracle_line(m)}, PR-AUC {m['pr_auc']:.4f}; "
        f"registered churn v{m['version']} as {m['alias']}",
        soft_wrap=True,
    )
    console.print(f"  split: {_split_line(m)}", soft_wrap=True)


def train_value_model(s: Settings, horizons: tuple[int, ...] = (), labels: Path | None = None) -> None:
    from training import oracle, tracking, value

    with step("evaluating customer-value models") as update:
        results = value.train(s, progress=update, oracle=oracle.for_value(s), requested=horizons, labels_path=labels)
    registered = results.pop("registered")
    for horizon, res in results.items():
        for method, m in res.items():
            if method == "picked":
                continue
            truth = f", Spearman vs true value {m['spearman_vs_truth']:.3f}" if "spearman_vs_truth" in m else ""
            console.print(
                f"  {horizon} {method:<18} MAE {m['mae']:9.2f}  RMSE {m['rmse']:9.2f}  "
                f"Spearman vs actual {m['spearman_vs_actual']:.3f}{truth}",
                soft_wrap=True,
            )
        how = (
            "out of time: trained on snapshots whose windows close before the test snapshot"
            if res["picked"]["split"] == "time"
            else "by customer (none on both sides): the history is too short for an out-of-time holdout"
        )
        console.print(f"  {horizon}: picked {res['picked']['method']} (lower holdout MAE); split {how}", soft_wrap=True)
    role = "champion" if tracking.alias_version(s, "value") == registered["version"] else "challenger"
    served = ", ".join(f"{h} d by {m}" for h, m in registered["methods"].items())
    console.print(f"  registered value v{registered['version']} as {role}: {served}", soft_wrap=True)
    if role == "challenger":
        console.print("  the champion still serves: `leadscope promote value` compares the two and promotes")


def train_nba_model(s: Settings, log: Path | None = None) -> None:
    from leadscope.tables import has_table
    from training import nba

    if log is None and not has_table(s.raw_dir, "campaigns"):
        fail("no campaigns table: next-best-action learns from a randomised campaign log (leadscope import)")
    try:
        with step("training next-best-action") as progress:
            out = nba.train(s, progress, log_path=log)
    except ValueError as exc:  # CatalogueError included
        fail(str(exc))
    console.print(f"  registered uplift v{out['version']} as {out['alias']} (MLflow run {out['run_id']})")
    if out["alias"] != "champion":
        console.print("  the champion still serves: `leadscope promote uplift` compares the two and promotes")
    for action, m in sorted(out["uplift"].items()):
        if "skipped_too_few_rows" in m:
            console.print(f"  {action:<16} skipped: {m['skipped_too_few_rows']:.0f} rows")
            continue
        best = ("t_learner", "x_learner", "dr_learner")[int(m["learner"])]
        console.print(
            f"  {action:<16} {best:<10} Qini {m[best + '_qini']:+.4f} (noise floor ± {m['qini_noise_sd']:.4f})  "
            f"AUUC {m[best + '_auuc']:+.4f}"
        )
    console.print(
        f"  off-policy, held-out customers ({out['heldout_rows']:,} logged rows), value per row vs do-nothing:"
    )
    for name, e in out["ope_incremental"].items():
        console.print(f"    {name:<20} IPS {e['ips']:+8.3f} ± {e['ips_se']:.3f}  DR {e['dr']:+8.3f} ± {e['dr_se']:.3f}")
    console.print(f"  verdict: {out['verdict'].text}", soft_wrap=True)


@train_app.command("propensity")
def train_propensity(
    no_champion: NoChampion = False,
    labels: Annotated[
        Path | None, typer.Option(help="Your own outcomes (customer_id, as_of, label); features taken at as_of.")
    ] = None,
    check: Check = False,
    exclude_features: Exclude = None,
    fairness_by: FairnessBy = None,
    cold_start: ColdStart = False,
    window_days: WindowDays = None,
) -> None:
    """Train the lead-propensity model, log it to MLflow and register it."""
    try:
        train_propensity_model(
            settings(),
            set_champion=False if no_champion else None,
            labels=labels,
            check=check,
            **_options(exclude_features, fairness_by, cold_start, window_days),
        )
    except ValueError as exc:
        fail(str(exc))


@train_app.command("churn")
def train_churn(
    no_champion: NoChampion = False,
    labels: Annotated[
        Path | None, typer.Option(help="Your own churn outcomes (customer_id, as_of, label); features taken at as_of.")
    ] = None,
    check: Check = False,
    exclude_features: Exclude = None,
    fairness_by: FairnessBy = None,
    cold_start: ColdStart = False,
    window_days: WindowDays = None,
) -> None:
    """Train the churn model (definition and horizon from LEADSCOPE_CHURN_*, or your labels), log and register it."""
    try:
        train_churn_model(
            settings(),
            set_champion=False if no_champion else None,
            labels=labels,
            check=check,
            **_options(exclude_features, fairness_by, cold_start, window_days),
        )
    except ValueError as exc:
        fail(str(exc))


@train_app.command("outcome")
def train_outcome(
    name: Annotated[str, typer.Option(help="The outcome's model name, e.g. upsell (served as models: [name]).")],
    labels: Annotated[Path, typer.Option(help="Your outcomes (customer_id, as_of, label 0/1); features at as_of.")],
    no_champion: NoChampion = False,
    check: Check = False,
    exclude_features: Exclude = None,
    fairness_by: FairnessBy = None,
    cold_start: ColdStart = False,
    window_days: WindowDays = None,
) -> None:
    """Train a named custom binary outcome on your own labels: its own FeatureService, MLflow model and champion."""
    from training import outcome

    try:
        with step(f"{'checking' if check else 'training'} outcome {name}") as update:
            m = outcome.train(
                settings(),
                name,
                labels,
                progress=update,
                set_champion=False if no_champion else None,
                check_only=check,
                **_options(exclude_features, fairness_by, cold_start, window_days),
            )
    except ValueError as exc:
        fail(str(exc))
    if _checked(m):
        return
    _report(m)
    console.print(
        f"  {m['feature_service']}: holdout ROC-AUC {m['roc_auc']:.4f}, PR-AUC {m['pr_auc']:.4f}, "
        f"lift@10% {m['lift_top_decile']:.2f}; registered {name} v{m['version']} as {m['alias']}",
        soft_wrap=True,
    )
    console.print(f"  split: {_split_line(m)}", soft_wrap=True)
    console.print(f'  served by POST /v1/scores with "models": ["{name}"]', soft_wrap=True, highlight=False)


@train_app.command("value")
def train_value(
    horizons: Annotated[
        str | None,
        typer.Option(help="Horizons in days, e.g. 30,90 (default: 90 and 365, each where the history allows)."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="Your own spend outcomes (customer_id, as_of, label = spend over --horizons days)."),
    ] = None,
) -> None:
    """Expected spend and repeat orders per horizon: LightGBM vs BG/NBD + Gamma-Gamma on the same split; the
    better serves each horizon."""
    from leadscope.cli.common import split_list

    try:
        days = tuple(int(h) for h in split_list(horizons))
    except ValueError:
        fail(f"--horizons: {horizons!r} is not a comma-separated list of days")
    try:
        train_value_model(settings(), days, labels)
    except ValueError as exc:
        fail(str(exc))


@train_app.command("nba")
def train_nba(
    labels: Annotated[
        Path | None,
        typer.Option(
            help="A randomised campaign log to learn from (the campaigns table's columns) instead of the stored one."
        ),
    ] = None,
) -> None:
    """Uplift models per catalogue action from the randomised campaign log, off-policy evaluation, registry."""
    train_nba_model(settings(), labels)


def promote(
    model: Annotated[str, typer.Argument(help="propensity, churn, value, uplift or a trained outcome's name")],
    tolerance: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="ROC-AUC the challenger may lose (propensity, churn: 0.005); value: share of MAE (0.02)."
        ),
    ] = None,
    max_psi: Annotated[float, typer.Option(help="Largest feature PSI (training vs latest data) allowed.")] = 0.25,
    max_loss_se: Annotated[
        float,
        typer.Option(
            min=0.0, help="uplift: policy value the challenger may lose, in standard errors of the paired DR."
        ),
    ] = 2.0,
    labels: Annotated[
        Path | None,
        typer.Option(help="propensity, churn, outcomes: judge on these outcomes (customer_id, as_of, label)."),
    ] = None,
) -> None:
    """Evaluate challenger vs champion on the latest holdout; move `champion` only if every check passes.
    value: MAE per horizon; uplift: both policies' doubly robust value on the same held-out randomised contacts."""
    from leadscope import outcomes
    from training import promotion

    s = settings()
    if model not in MODELS and model not in outcomes.names(s):
        trained = ", ".join(outcomes.names(s)) or "none yet"
        fail(f"unknown model {model}: choose {', '.join(MODELS)} or a trained outcome ({trained})")
    kind = MODELS[model].kind if model in MODELS else "classifier"
    if kind == "uplift":
        kw: dict[str, float] = {"max_loss_se": max_loss_se}
    elif kind == "value":
        kw = {"tolerance": promotion.VALUE_TOLERANCE if tolerance is None else tolerance}
    else:
        kw = {"tolerance": promotion.TOLERANCE if tolerance is None else tolerance, "max_psi": max_psi}
        kw["labels_path"] = labels
    try:
        with step(f"evaluating {model} challenger vs champion"):
            d = promotion.promote(s, model, **kw)
    except Exception as exc:  # noqa: BLE001 - a missing alias or model is a user error, said plainly
        fail(f"cannot evaluate {model}: {exc}")
    for c in d.checks:
        console.print(f"  {'[green]pass[/]' if c.passed else '[red]FAIL[/]'}  {c.name}: {c.detail}", soft_wrap=True)
    if d.promoted:
        console.print(f"promoted {model} v{d.challenger} to champion (was v{d.champion})")
    else:
        console.print(f"refused: {model} champion stays v{d.champion}; challenger v{d.challenger} not promoted")
        raise typer.Exit(1)


def monitor(
    model: Annotated[Classifier, typer.Argument(help="propensity or churn")] = Classifier["propensity"],
    max_psi: Annotated[float, typer.Option(help="PSI above which a feature is flagged as drifted.")] = 0.25,
) -> None:
    """PSI per feature and of the score (training vs now), realised vs predicted; logged to MLflow."""
    from training import monitoring

    with step(f"monitoring {model.value}"):
        result = monitoring.monitor(settings(), model.value)
    console.print(f"  now: {int(result['rows_now']['rows'][0]):,} rows scored; largest drift first")
    for line in monitoring.summary(result, max_psi=max_psi):
        console.print("  " + line, soft_wrap=True, highlight=False)
