"""The `leadscope` command line.

This module is the composition root: it is the one kernel module that reaches up into features/,
training/ and serving/, and only lazily inside commands, so importing the kernel stays cheap and acyclic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console

from leadscope.settings import Settings, quiet_environment

app = typer.Typer(
    help="leadscope: lead scoring and audience insight.", no_args_is_help=True, pretty_exceptions_enable=False
)
features_app = typer.Typer(help="Build and load the Feast feature store.", no_args_is_help=True)
train_app = typer.Typer(help="Train a model and register it in MLflow.", no_args_is_help=True)
app.add_typer(features_app, name="features")
app.add_typer(train_app, name="train")
identities_app = typer.Typer(help="Resolve CRM records to people.", no_args_is_help=True)
app.add_typer(identities_app, name="identities")
keys_app = typer.Typer(help="API keys: create, revoke, list (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
signals_app = typer.Typer(help="Conversion signals to ad platforms: deliver, status.", no_args_is_help=True)
app.add_typer(signals_app, name="signals")
nba_app = typer.Typer(help="Next-best-action: budgeted plans for an audience.", no_args_is_help=True)
app.add_typer(nba_app, name="nba")
audience_app = typer.Typer(help="Lookalike audiences: build, insight, export.", no_args_is_help=True)
app.add_typer(audience_app, name="audience")
console = Console(stderr=True)
T = TypeVar("T")


class ModelName(StrEnum):
    propensity = "propensity"
    churn = "churn"


class PromotableModel(StrEnum):
    propensity = "propensity"
    churn = "churn"
    value = "value"
    uplift = "uplift"


@contextmanager
def step(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner while a long step runs, then a ✓ line with its duration."""
    t0 = time.perf_counter()
    with console.status(f"[bold]{title}…") as status:
        yield lambda sub: status.update(f"[bold]{title}…[/] {sub}")
    console.print(f"[green]✓[/] {title} [dim]({time.perf_counter() - t0:.1f} s)[/]")


def _settings() -> Settings:
    """Read fresh for every command (not the process-wide cache), so the environment of this call counts."""
    quiet_environment()
    return Settings()


@app.command()
def generate(
    customers: Annotated[int, typer.Option(min=100, help="Number of people to simulate.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data.")] = 42,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <data_dir>/raw).")] = None,
    days: Annotated[int, typer.Option(min=120, help="Days of history.")] = 540,
) -> None:
    """Write a synthetic company's canonical tables (parquet) and the ground truth behind them."""
    from leadscope.synth import generate as make

    settings = _settings()
    target = out or settings.raw_dir
    with step(f"generating {customers:,} customers (seed {seed})"):
        company = make(customers=customers, seed=seed, end=settings.world_end, days=days)
        company.write(target)
    for name, df in company.tables.items():
        console.print(f"  {name:<13} {len(df):>10,} rows")
    console.print(f"  written to {target}")


@features_app.command("build")
def features_build() -> None:
    """Compute feature sources from the raw tables, register them in Feast and materialise online."""
    _build_features(_settings())


@features_app.command("materialize")
def features_materialize() -> None:
    """Load feature rows newer than the last materialisation into the online store (incremental)."""
    from features import store

    settings = _settings()
    with step("materialising the online store (incremental)"):
        moved = store.materialize_incremental(store.open_store(settings), settings)
    for view, (start, end) in moved.items():
        console.print(f"  {view}: {start} → {end}")
    if not moved:
        console.print("  nothing new since the last materialisation")


@train_app.command("propensity")
def train_propensity(
    no_champion: Annotated[
        bool, typer.Option(help="Register as challenger even if no champion exists (first model: champion).")
    ] = False,
    labels: Annotated[
        Path | None, typer.Option(help="Your own outcomes (customer_id, as_of, label); features taken at as_of.")
    ] = None,
) -> None:
    """Train the lead-propensity model, log it to MLflow and register it."""
    try:
        _train(_settings(), set_champion=False if no_champion else None, labels=labels)
    except ValueError as exc:
        console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2) from None


@app.command("import")
def import_(
    customers: Annotated[Path | None, typer.Option(help="customers CSV/parquet")] = None,
    transactions: Annotated[Path | None, typer.Option(help="transactions CSV/parquet")] = None,
    events: Annotated[Path | None, typer.Option(help="engagement events CSV/parquet")] = None,
    edges: Annotated[Path | None, typer.Option(help="social edges CSV/parquet")] = None,
    stages: Annotated[Path | None, typer.Option(help="CRM stages CSV/parquet")] = None,
    campaigns: Annotated[Path | None, typer.Option(help="campaign log CSV/parquet")] = None,
    labels: Annotated[Path | None, typer.Option(help="own outcome labels CSV/parquet")] = None,
    report: Annotated[Path, typer.Option(help="Where to write rejected rows (file, row, column, reason).")] = Path(
        "import_rejects.csv"
    ),
) -> None:
    """Validate and import a company's own tables; invalid rows go to the report, never silently away."""
    from features.ingest import FileRefused, import_files

    settings = _settings()
    given = {
        "customers": customers,
        "transactions": transactions,
        "events": events,
        "edges": edges,
        "stages": stages,
        "campaigns": campaigns,
        "labels": labels,
    }
    files = {k: v for k, v in given.items() if v is not None}
    if not files:
        console.print("[red]error[/]: give at least one file, e.g. --customers customers.csv")
        raise typer.Exit(2)
    try:
        results = import_files(settings.raw_dir, files)
    except FileRefused as exc:
        console.print(f"[red]refused[/]: {exc}. Nothing was imported.")
        raise typer.Exit(2) from None
    import pandas as pd

    rejects = pd.concat([r.rejects for r in results], ignore_index=True)
    rejects.to_csv(report, index=False)
    for r in results:
        console.print(
            f"  {r.table:<13} read {r.read:>10,}  accepted {r.accepted:>10,}  rejected rows "
            f"{r.rejects['row'].nunique():>8,}"
        )
    console.print(
        f"  rejection report: {report} ({len(rejects):,} issues). Run `leadscope features build` to refresh features."
    )


@identities_app.command("resolve")
def identities_resolve(
    max_share: Annotated[int, typer.Option(min=2, help="An identifier on more records than this links nobody.")] = 5,
    out: Annotated[Path | None, typer.Option(help="Write customer_id → person_id here (parquet).")] = None,
    show: Annotated[int, typer.Option(help="Merges to print.")] = 10,
) -> None:
    """Link records that share a normalised email, phone, WeChat or device id; print what merged and why."""
    import pandas as pd

    from graphs.identity import pair_scores, resolve

    settings = _settings()
    customers = pd.read_parquet(settings.raw_dir / "customers.parquet")
    with step(f"resolving {len(customers):,} records"):
        r = resolve(customers, max_share=max_share)
    people = r.person.nunique()
    console.print(f"  {len(customers):,} records → {people:,} people; {len(r.merges):,} merged groups")
    for row in r.merges.head(show).itertuples():
        console.print(f"  {row.person_id}: {row.customer_ids}  (linked by {row.linked_by})")
    for row in r.guarded.itertuples():
        console.print(
            f"  [yellow]guard[/]: a {row.kind} (sha256 {row.fingerprint}…) is on {row.records} records; "
            "not used to link"
        )
    truth = settings.raw_dir / "truth" / "customers.parquet"
    if truth.exists():
        t = pd.read_parquet(truth, columns=["customer_id", "person_id"]).set_index("customer_id")["person_id"]
        sc = pair_scores(r.person, t)
        console.print(
            f"  vs the generator's planted duplicates: precision {sc['precision']:.4f}, "
            f"recall {sc['recall']:.4f} ({sc['true_pairs']:.0f} true pairs)"
        )
    if out:
        r.person.rename("person_id").rename_axis("customer_id").reset_index().to_parquet(out, index=False)
        console.print(f"  written to {out}")


@train_app.command("churn")
def train_churn(
    no_champion: Annotated[
        bool, typer.Option(help="Register as challenger even if no champion exists (first model: champion).")
    ] = False,
) -> None:
    """Train the churn model (definition and horizon from LEADSCOPE_CHURN_*), log and register it."""
    from training import churn

    settings = _settings()
    with step(f"training the churn model ({settings.churn_definition}, {settings.churn_horizon_days} d)") as update:
        m = churn.train(settings, progress=update, set_champion=False if no_champion else None)
    oracle = f" (oracle {m['oracle_roc_auc']:.4f}, ratio {m['auc_vs_oracle']:.3f})" if "oracle_roc_auc" in m else ""
    console.print(
        f"  {m['feature_service']}: holdout ROC-AUC {m['roc_auc']:.4f}{oracle}, PR-AUC {m['pr_auc']:.4f}; "
        f"registered churn v{m['version']} as {m['alias']}",
        soft_wrap=True,
    )


@train_app.command("value")
def train_value() -> None:
    """Expected spend over 90 and 365 days: LightGBM vs BG/NBD + Gamma-Gamma on the same split, logged."""
    from training import tracking, value

    settings = _settings()
    with step("evaluating customer-value models") as update:
        results = value.train(settings, progress=update)
    registered = results.pop("registered", None)
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
        console.print(f"  {horizon}: picked {res['picked']['method']} (lower holdout MAE)")
    if registered:
        role = "champion" if tracking.alias_version(settings, "value") == registered["version"] else "challenger"
        console.print(f"  registered value v{registered['version']} as {role} (LightGBM, both horizons)")
        if role == "challenger":
            console.print("  the champion still serves: `leadscope promote value` compares the two and promotes")


@app.command()
def promote(
    model: Annotated[PromotableModel, typer.Argument(help="propensity, churn, value or uplift")],
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
) -> None:
    """Evaluate challenger vs champion on the latest holdout; move `champion` only if every check passes.
    value: MAE per horizon; uplift: both policies' doubly robust value on the same held-out randomised contacts."""
    from training import promotion

    settings = _settings()
    if model is PromotableModel.uplift:
        kw = {"max_loss_se": max_loss_se}
    elif model is PromotableModel.value:
        kw = {"tolerance": promotion.VALUE_TOLERANCE if tolerance is None else tolerance}
    else:
        kw = {"tolerance": promotion.TOLERANCE if tolerance is None else tolerance, "max_psi": max_psi}
    try:
        with step(f"evaluating {model} challenger vs champion"):
            d = promotion.promote(settings, model.value, **kw)
    except Exception as exc:  # noqa: BLE001 - a missing alias or model is a user error, said plainly
        console.print(f"[red]error[/]: cannot evaluate {model.value}: {exc}")
        raise typer.Exit(2) from None
    for c in d.checks:
        console.print(f"  {'[green]pass[/]' if c.passed else '[red]FAIL[/]'}  {c.name}: {c.detail}", soft_wrap=True)
    if d.promoted:
        console.print(f"promoted {model} v{d.challenger} to champion (was v{d.champion})")
    else:
        console.print(f"refused: {model} champion stays v{d.champion}; challenger v{d.challenger} not promoted")
        raise typer.Exit(1)


@app.command("monitor")
def monitor_cmd(
    model: Annotated[ModelName, typer.Argument(help="propensity or churn")] = ModelName.propensity,
    max_psi: Annotated[float, typer.Option(help="PSI above which a feature is flagged as drifted.")] = 0.25,
) -> None:
    """PSI per feature and of the score (training vs now), realised vs predicted; logged to MLflow."""
    from training import monitoring

    settings = _settings()
    with step(f"monitoring {model}"):
        result = monitoring.monitor(settings, model.value)
    console.print(f"  now: {int(result['rows_now']['rows'][0]):,} rows scored; largest drift first")
    for line in monitoring.summary(result, max_psi=max_psi):
        console.print("  " + line, soft_wrap=True, highlight=False)


@app.command()
def serve(
    host: str | None = None,
    port: int | None = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (each loads models and features).")] = 1,
) -> None:
    """Serve the HTTP API (SIGTERM/Ctrl-C: stop accepting, let in-flight requests finish, then exit)."""
    import os
    import tempfile

    import uvicorn

    from serving.app import create_app
    from serving.observability import configure_logging

    settings = _settings()
    configure_logging(settings.log_format)
    common = dict(
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
    )
    if workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # every worker reads settings from the environment; /metrics aggregates them through this directory
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="leadscope-metrics-"))
    # one socket shared by all workers: a worker still loading must not accept (it would answer 503s)
    os.environ["LEADSCOPE_BACKGROUND_LOAD"] = "false"
    uvicorn.run("serving.app:factory", factory=True, workers=workers, **common)


@app.command()
def run(skip_serve: Annotated[bool, typer.Option(help="Prepare everything but do not serve.")] = False) -> None:
    """The main job: data → features → model (each only if missing), then serve with a curl example."""
    from leadscope.synth import generate as make
    from training import tracking

    settings = _settings()
    if not (settings.raw_dir / "customers.parquet").exists():
        with step(f"generating a synthetic company of {settings.customers:,} customers"):
            make(
                customers=settings.customers, seed=settings.seed, end=settings.world_end, days=settings.world_days
            ).write(settings.raw_dir)
    else:
        console.print(f"[green]✓[/] data found in {settings.raw_dir}")
    if not (settings.feature_dir / "meta.json").exists():
        _build_features(settings)
    else:
        console.print(f"[green]✓[/] features found in {settings.feature_dir}")
    if not tracking.has_champion(settings, "propensity"):
        _train(settings, set_champion=True)
    else:
        console.print("[green]✓[/] model propensity@champion found in MLflow")
    if not tracking.has_champion(settings, "churn"):
        train_churn(no_champion=False)
    else:
        console.print("[green]✓[/] model churn@champion found in MLflow")
    if not tracking.has_champion(settings, "value"):
        train_value()
    else:
        console.print("[green]✓[/] model value@champion found in MLflow")
    if not (settings.raw_dir / "campaigns.parquet").exists():
        console.print("[yellow]-[/] no campaigns table: next-best-action not trained")
    elif not tracking.has_champion(settings, "uplift"):
        train_nba()
    else:
        console.print("[green]✓[/] model uplift@champion found in MLflow")
    example = _example_id(settings)
    token = _default_key(settings) if settings.auth else None
    if token:
        console.print(
            f"\n[bold]Default API key[/] (all scopes; shown this once, only its hash is stored):\n  {token}",
            soft_wrap=True,
            highlight=False,
        )
    key = token or "$LEADSCOPE_API_KEY"
    curl = (
        f"curl -s -X POST http://{settings.host}:{settings.port}/v1/scores "
        f"-H 'content-type: application/json' -H 'authorization: Bearer {key}' "
        f'-d \'{{"customer_ids": ["{example}"], "models": ["propensity", "churn"]}}\''
    )
    nba_curl = curl.replace("/v1/scores", "/v1/next-best-action").replace(', "models": ["propensity", "churn"]', "")
    curl += f"\n  {nba_curl}"
    hint = "" if token else "\n  (use your key; `leadscope keys create --name me --scope score` makes a new one)"
    console.print(f"\nTry it:\n  {curl}{hint}\n", soft_wrap=True, highlight=False)
    if not skip_serve:
        serve(host=None, port=None)


def _build_features(settings: Settings) -> None:
    from features import store
    from features.build import build
    from graphs import build as graph_build

    with step("building features") as update:
        counts = build(settings, progress=update)
    with step("building social-graph features"):
        counts["customer_graph"] = graph_build.build(settings)
    console.print("  " + ", ".join(f"{k}: {v:,} rows" for k, v in counts.items()), soft_wrap=True)
    with step("registering feature views in Feast"):
        fs = store.apply(settings)
    with step("materialising the online store"):
        store.materialize(fs, settings)


def _train(settings: Settings, *, set_champion: bool | None, labels: Path | None = None) -> None:
    from training import propensity

    with step("training the propensity model") as update:
        m = propensity.train(settings, progress=update, set_champion=set_champion, labels_path=labels)
    oracle = f" (oracle {m['oracle_roc_auc']:.4f}, ratio {m['auc_vs_oracle']:.3f})" if "oracle_roc_auc" in m else ""
    graph = (
        f"; without graph features {m['roc_auc_without_graph']:.4f} (gain {m['graph_roc_auc_gain']:+.4f})"
        if "graph_roc_auc_gain" in m
        else ""
    )
    console.print(
        f"  {m['feature_service']}: holdout ROC-AUC {m['roc_auc']:.4f}{oracle}, PR-AUC {m['pr_auc']:.4f}, "
        f"lift@10% {m['lift_top_decile']:.2f}{graph}; registered propensity v{m['version']}" + f" as {m['alias']}",
        soft_wrap=True,
    )


def _example_id(settings: Settings) -> str:
    import pandas as pd

    ids = pd.read_parquet(settings.raw_dir / "customers.parquet", columns=["customer_id"])["customer_id"]
    return str(ids.iloc[len(ids) // 2])


@app.command("score")
def score_cmd(
    input: Annotated[Path, typer.Option("--input", help="CSV with a customer_id column (or ids in the first column).")],
    out: Annotated[Path, typer.Option(help="Output file: .parquet or .csv.")],
    models: Annotated[str, typer.Option(help="Comma-separated: propensity, churn, value.")] = "propensity",
    chunk: Annotated[int, typer.Option(min=100, max=50_000, help="Ids per online-store read.")] = 5_000,
) -> None:
    """Batch scoring with the champions, reading features from the online store like the API does."""
    import pandas as pd
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from serving.batch import flatten
    from serving.scoring import score_items
    from serving.state import ServingState

    names = [m.strip() for m in models.split(",") if m.strip()]
    bad = [m for m in names if m not in ("propensity", "churn", "value")]
    if bad or not names:
        raise ValueError(f"--models: unknown model {bad[0] if bad else '(none)'} (choose propensity, churn, value)")
    if out.suffix not in (".parquet", ".csv"):
        raise ValueError(f"--out: {out.name} must end in .parquet or .csv")
    try:
        frame = pd.read_csv(input, dtype=str)
    except pd.errors.EmptyDataError:
        raise ValueError(f"--input: {input} is empty") from None
    col = "customer_id" if "customer_id" in frame.columns else frame.columns[0]
    ids = frame[col].dropna().astype(str).tolist()
    if not ids:
        raise ValueError(f"--input: {input} holds no customer ids")
    settings = _settings()
    state = ServingState(settings)
    with step("loading models and the feature store"):
        state.load(names=tuple(names), optional=())
    if state.problems:
        raise ValueError("; ".join(state.problems))
    parts = []
    columns = [TimeRemainingColumn(), MofNCompleteColumn(), BarColumn()]
    with Progress(*Progress.get_default_columns()[:1], *columns, console=console) as bar:
        task = bar.add_task("scoring", total=len(ids))
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            parts.append(flatten(score_items(state, names, part), names))
            bar.advance(task, len(part))
    result = pd.concat(parts, ignore_index=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.to_parquet(out, index=False) if out.suffix == ".parquet" else result.to_csv(out, index=False)
    unknown = int(result["error"].notna().sum())
    console.print(f"[green]✓[/] {len(result):,} rows → {out} ({unknown:,} unknown ids)")


@signals_app.command("deliver")
def signals_deliver(
    wait: Annotated[bool, typer.Option(help="Wait out retry backoffs until nothing is pending.")] = True,
    max_seconds: Annotated[float, typer.Option(min=1, help="Stop after this long even if rows are pending.")] = 600,
) -> None:
    """Send pending conversion payloads to every enabled platform (batched, retried with backoff)."""
    import httpx

    from serving.signals.ingest import outbox_for

    outbox = outbox_for(_settings())
    with httpx.Client() as client, step("delivering conversion signals"):
        counts = outbox.deliver(client, until_empty=wait, max_seconds=max_seconds)
    console.print(f"  this run: {dict(counts) or 'nothing due'}")
    status = outbox.status()
    for platform, states in sorted(status.items()):
        console.print(f"  {platform}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(states.items())))
    if any(s.get("pending") for s in status.values()):
        raise typer.Exit(1)


@signals_app.command("status")
def signals_status() -> None:
    """Deliveries per platform and status."""
    from serving.signals.ingest import outbox_for

    for platform, states in sorted(outbox_for(_settings()).status().items()):
        print(f"{platform}\t" + "\t".join(f"{k}={v}" for k, v in sorted(states.items())))


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/] {message}")
    raise typer.Exit(2)


def _seed_ids(path: Path) -> list[str]:
    import pandas as pd

    if not path.exists():
        _fail(f"--seed: no file at {path}")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
        _fail(f"--seed: cannot read {path.name} ({type(exc).__name__})")
    if df.empty:
        _fail(f"--seed: {path.name} has no rows")
    col = "customer_id" if "customer_id" in df else df.columns[0]
    return df[col].dropna().astype(str).tolist()


@audience_app.command("lookalike")
def audience_lookalike(
    seed: Annotated[Path, typer.Option(help="CSV/parquet of seed customers (column customer_id, or the first).")],
    out: Annotated[Path, typer.Option(help="Members file (.csv or .parquet): customer_id, rank, similarity.")],
    percent: Annotated[float | None, typer.Option(help="Audience size as 0.1-10% of the population.")] = None,
    size: Annotated[int | None, typer.Option(help="Or: audience size in people.")] = None,
    exclude: Annotated[str, typer.Option(help="Comma-separated: seed, customers, opted_out.")] = "seed",
    name: Annotated[str, typer.Option(help="A name marketers will recognise.")] = "lookalike",
) -> None:
    """Build a lookalike audience from a seed file; it is stored like one built through the API (same id)."""
    from serving import audiences
    from training import lookalike, population

    if (size is None) == (percent is None):
        _fail("give exactly one of --percent and --size")
    if percent is not None and not 0.1 <= percent <= 10:
        _fail(f"--percent: {percent} is outside 0.1-10")
    if size is not None and size < 1:
        _fail("--size: must be at least 1")
    excl = tuple(dict.fromkeys(e.strip() for e in exclude.split(",") if e.strip()))
    if bad := [e for e in excl if e not in lookalike.EXCLUSIONS]:
        _fail(f"--exclude: {bad[0]!r} is not one of {', '.join(lookalike.EXCLUSIONS)}")
    if out.suffix not in (".csv", ".parquet"):
        _fail(f"--out: {out.name} should end in .csv or .parquet")
    settings = _settings()
    ids = _seed_ids(seed)
    with step("reading the population (feature store, newest snapshot)"):
        pop = population.load(settings)
    req = audiences.Request(ids, size, percent, excl, name)
    try:
        rows, summary, target = audiences.resolve(pop, req)
    except ValueError as exc:
        _fail(str(exc).replace("seed_customer_ids:", "--seed:"))
    store = audiences.AudienceStore(settings.database_url)
    audience_id = store.create(req, target, summary)
    with step(f"building {target:,} lookalikes of {len(rows):,} seed customers"):
        audiences.run_build(settings, store, pop, audience_id, req, rows, target, audiences.tracker(settings))
    found = store.get(audience_id)
    if found["status"] != "ready":
        _fail(f"build failed: {found['error']}")
    members = store.member_ids(audience_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    members.to_parquet(out, index=False) if out.suffix == ".parquet" else members.to_csv(out, index=False)
    m = found["metrics"]
    console.print(f"[green]✓[/] audience {audience_id}: {len(members):,} members → {out}")
    console.print(
        f"  seed {summary['resolved']:,} resolved, {summary['unknown_count']:,} unknown; held-out seed recall at "
        f"this size {m['val_recall_at_size']:.1%}; weights {m['weights']}; MLflow run {m.get('mlflow_run_id')}"
    )


@audience_app.command("insight")
def audience_insight(
    audience: Annotated[str, typer.Option(help="The audience id (aud_...).")],
    compare: Annotated[str | None, typer.Option(help="Another audience id: overlap.")] = None,
    cross: Annotated[str | None, typer.Option(help="Two attributes, e.g. age_band,competitor_purchase.")] = None,
    top: Annotated[int, typer.Option(min=1, max=50)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (same as the API).")] = False,
) -> None:
    """What sets an audience apart from the population (lift with 95% intervals), and more."""
    import json

    from serving import audiences
    from training import population, tracking

    settings = _settings()
    store = audiences.AudienceStore(settings.database_url)

    def rows_of(audience_id: str, option: str):  # noqa: ANN202 - numpy array
        found = store.get(audience_id)
        if found is None:
            _fail(f"{option}: no audience {audience_id}")
        if found["status"] != "ready":
            _fail(f"{option}: audience {audience_id} is {found['status']}")
        r = pop.index.get_indexer(store.member_ids(audience_id)["customer_id"])
        return found, r[r >= 0]

    pop = population.load(settings)
    found, rows = rows_of(audience, "--audience")
    other = rows_of(compare, "--compare")[1] if compare else None
    attrs = audiences.attributes_of(pop)
    pair = [a.strip() for a in cross.split(",")] if cross else None
    if pair and (len(pair) != 2 or any(a not in attrs for a in pair)):
        _fail(f"--cross: give two of {', '.join(attrs.columns)}")
    champion = tracking.load_champion(settings, "propensity") if tracking.has_champion(settings, "propensity") else None
    rep = audiences.report(
        pop,
        attrs,
        rows,
        champion=champion,
        horizon_days=settings.propensity_horizon_days,
        pair=pair,
        other=other,
        compare=compare,
        top=top,
        audience_id=audience,
        size=found["size"],
    )
    if as_json:
        print(json.dumps(rep, indent=2))
        return
    console.print(f"[bold]{found['name']}[/] ({audience}): {rep['size']:,} of {rep['population']:,} people")
    ec = rep["expected_conversion"]
    if ec and ec["rate"] is not None:
        console.print(
            f"  expected {ec['horizon_days']}-day conversion of its {ec['leads']:,} open leads: {ec['rate']:.1%} "
            f"(all open leads {ec['population_rate']:.1%}; {ec['model']} v{ec['version']})"
        )
    console.print("  most distinguishing:")
    for x in rep["distinguishing"]:
        console.print(
            f"    {x['attribute']} = {x['value']:<14} {x['audience_share']:6.1%} vs {x['population_share']:6.1%}  "
            f"lift {x['lift']:.2f} [{x['lift_low']:.2f}, {x['lift_high']:.2f}]  n={x['audience_count']:,}"
        )
    if pair:
        console.print(f"  {pair[0]} × {pair[1]}:")
        for c in rep["cross"]["cells"][:20]:
            console.print(
                f"    {c[pair[0]]:<12} {c[pair[1]]:<12} n={c['audience_count']:>6,}  "
                f"{c['audience_share']:6.1%} vs {c['population_share']:6.1%}  lift {c['lift']:.2f}"
            )
    if other is not None:
        o = rep["overlap"]
        console.print(
            f"  overlap with {compare}: {o['intersection']:,} in both (jaccard {o['jaccard']:.3f}; "
            f"{o['share_of_audience']:.1%} of this, {o['share_of_compare']:.1%} of that)"
        )


@audience_app.command("export")
def audience_export(
    audience: Annotated[str, typer.Option(help="The audience id (aud_...).")],
    format: Annotated[str, typer.Option(help="meta (Customer List) or google (Customer Match).")],
    out: Annotated[Path, typer.Option(help="The CSV to write.")],
) -> None:
    """The platform's customer-list CSV, identifiers hashed by its rules; members without ads consent left out."""
    from features.build import read_table
    from serving import audiences

    if format not in audiences.FORMATS:
        _fail(f"--format: {format!r} is not one of {', '.join(audiences.FORMATS)}")
    settings = _settings()
    store = audiences.AudienceStore(settings.database_url)
    found = store.get(audience)
    if found is None or found["status"] != "ready":
        _fail(f"--audience: {audience} is {'unknown' if found is None else found['status']}")
    text, counts = audiences.export_csv(format, read_table(settings.raw_dir, "customers"), store.member_ids(audience))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    console.print(f"[green]✓[/] {counts['rows']:,} rows → {out} ({counts})")


@train_app.command("nba")
def train_nba() -> None:
    """Uplift models per catalogue action from the randomised campaign log, off-policy evaluation, registry."""
    from leadscope.catalogue import CatalogueError
    from training import nba

    settings = _settings()
    if not (settings.raw_dir / "campaigns.parquet").exists():
        _fail("no campaigns table: next-best-action learns from a randomised campaign log (leadscope import)")
    try:
        with step("training next-best-action") as progress:
            out = nba.train(settings, progress)
    except CatalogueError as exc:
        _fail(str(exc))
    console.print(f"  registered uplift v{out['version']} as {out['alias']} (MLflow run {out['run_id']})")
    if out["alias"] != "champion":
        console.print("  the champion still serves: `leadscope promote uplift` compares the two and promotes")
    for action, m in sorted(out["uplift"].items()):
        if "skipped_too_few_rows" in m:
            console.print(f"  {action:<16} skipped: {m['skipped_too_few_rows']:.0f} rows")
            continue
        best = ("t_learner", "x_learner", "dr_learner")[int(m["learner"])]
        console.print(f"  {action:<16} {best:<10} Qini {m[best + '_qini']:+.4f}  AUUC {m[best + '_auuc']:+.4f}")
    console.print(
        f"  off-policy, held-out customers ({out['heldout_rows']:,} logged rows), value per row vs do-nothing:"
    )
    for name, e in out["ope_incremental"].items():
        console.print(f"    {name:<20} IPS {e['ips']:+8.3f} ± {e['ips_se']:.3f}  DR {e['dr']:+8.3f} ± {e['dr_se']:.3f}")


@nba_app.command("plan")
def nba_plan(
    budget: Annotated[float, typer.Option(min=0, help="Total spend on contacts.")],
    out: Annotated[Path, typer.Option(help="Plan file (.csv or .parquet), one row per customer.")],
    audience: Annotated[str | None, typer.Option(help="An audience id (aud_...); default: every customer.")] = None,
    capacity: Annotated[
        str | None, typer.Option(help="Per-channel capacity, e.g. sales_call=200,sms=5000 (default: catalogue).")
    ] = None,
) -> None:
    """Allocate one action per customer under a budget and channel capacities (greedy by return per cost)."""
    import pandas as pd

    from features.build import read_table
    from leadscope import catalogue as catalogue_lib
    from serving import audiences
    from training import nba, population, tracking

    if out.suffix not in (".csv", ".parquet"):
        _fail(f"--out: {out.name} should end in .csv or .parquet")
    settings = _settings()
    try:
        cat = catalogue_lib.load(settings.actions_catalogue)
    except catalogue_lib.CatalogueError as exc:
        _fail(str(exc))
    caps = dict(cat.capacity)
    for part in (capacity or "").split(","):
        if not part.strip():
            continue
        channel, _, n = part.partition("=")
        if channel.strip() not in {a.channel for a in cat.actions} or not n.strip().isdigit():
            _fail(f"--capacity: {part.strip()!r} is not channel=count with a catalogue channel")
        caps[channel.strip()] = int(n)
    if not tracking.has_champion(settings, nba.NAME):
        _fail("no next-best-action model is registered; run `leadscope train nba` first")
    pop = population.load(settings)
    rows = slice(None)
    if audience:
        found = audiences.AudienceStore(settings.database_url).get(audience)
        if found is None or found["status"] != "ready":
            _fail(f"--audience: {audience} is {'unknown' if found is None else found['status']}")
        members = audiences.AudienceStore(settings.database_url).member_ids(audience)["customer_id"]
        at = pop.index.get_indexer(members)
        rows = at[at >= 0]
    frame = pop.frame.iloc[rows].reset_index(drop=True)
    version, bundle = nba.load_champion(settings)
    with step(f"planning {len(frame):,} customers"):
        has_log = (settings.raw_dir / "campaigns.parquet").exists()
        log = read_table(settings.raw_dir, "campaigns") if has_log else pd.DataFrame()
        scored = nba.score_frame(
            bundle, cat, frame, read_table(settings.raw_dir, "customers"), log, pd.Timestamp(pop.as_of)
        )
        result = nba.plan(scored, budget, caps, cat.nothing.id)
    result.insert(0, "customer_id", frame["customer_id"].to_numpy())
    out.parent.mkdir(parents=True, exist_ok=True)
    result.to_parquet(out, index=False) if out.suffix == ".parquet" else result.to_csv(out, index=False)
    spent, gain = result["cost"].sum(), result["expected_incremental_value"].sum()
    console.print(
        f"[green]✓[/] {out}: {int((result['action_id'] != cat.nothing.id).sum()):,} of {len(result):,} contacted, "
        f"spend {spent:,.2f} of {budget:,.2f}, expected incremental value {gain:,.2f} "
        f"(uplift v{version})"
    )
    for (channel, action), g in result.groupby(["channel", "action_id"]):
        console.print(
            f"  {action:<16} {channel:<20} {len(g):>7,}  value {g['expected_incremental_value'].sum():>10,.2f}"
        )


def _keystore(settings: Settings):  # noqa: ANN202 - serving.keys.KeyStore, imported lazily
    from serving.keys import KeyStore

    return KeyStore(settings.database_url)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. 'crm-prod'.")],
    scope: Annotated[
        list[str], typer.Option("--scope", help="score, audiences, conversions or admin (repeat for several).")
    ],
    rate: Annotated[str | None, typer.Option(help="Rate limit of this key, e.g. '100/second'.")] = None,
) -> None:
    """Create a key. It is printed once, on stdout; only its SHA-256 is stored."""
    token, key = _keystore(_settings()).create(name, scope, rate)
    console.print(f"created key {key.key_id} ({key.name}; scopes {', '.join(sorted(key.scopes))}); it is shown once:")
    print(token)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (the part after 'lsk_').")]) -> None:
    """Revoke a key; servers refuse it within key_cache_seconds."""
    if not _keystore(_settings()).revoke(key_id):
        console.print(f"[red]error[/]: no active key with id {key_id}")
        raise typer.Exit(2)
    console.print(f"revoked key {key_id}")


@keys_app.command("list")
def keys_list() -> None:
    """Key ids, names, scopes and state (never the keys themselves)."""
    for k in _keystore(_settings()).list():
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.key_id}\t{k.name}\t{','.join(sorted(k.scopes))}\t{k.rate_limit or 'default'}\t{state}")


def _default_key(settings: Settings) -> str | None:
    """On the very first start, one key with every scope, printed once; later runs reuse the stored keys."""
    from serving.keys import SCOPES

    store = _keystore(settings)
    if store.list():
        return None
    token, _ = store.create("default", list(SCOPES))
    return token


def main() -> None:
    """Entry point: expected failures (missing data, no trained model yet, bad input) end with a one-line
    message and exit code 2 instead of a traceback."""
    import mlflow

    try:
        app()
    except (FileNotFoundError, ValueError, mlflow.exceptions.MlflowException) as exc:
        console.print(f"[red]error[/]: {exc}")
        console.print(
            "  (run `leadscope run --skip-serve` or `leadscope import ...` first if data or models are missing)"
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
