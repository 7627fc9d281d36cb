"""`leadscope serve` (the HTTP API) and `leadscope run` (the main job: data → features → models → serve)."""

from __future__ import annotations

from typing import Annotated

import typer

from leadscope.cli.common import console, settings, step
from leadscope.settings import Settings


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

    s = settings()
    configure_logging(s.log_format)
    common = dict(
        host=host or s.host,
        port=port or s.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(s.graceful_shutdown_seconds),
    )
    if workers == 1:
        uvicorn.run(create_app(s), **common)
        return
    # every worker reads settings from the environment; /metrics aggregates them through this directory
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="leadscope-metrics-"))
    # one socket shared by all workers: a worker still loading must not accept (it would answer 503s)
    os.environ["LEADSCOPE_BACKGROUND_LOAD"] = "false"
    uvicorn.run("serving.app:factory", factory=True, workers=workers, **common)


def _prepare(s: Settings) -> None:
    """Each step of the main job only when its output is missing, in the order each needs the last."""
    from leadscope.cli.features import build_features
    from leadscope.cli.train import train_churn_model, train_nba_model, train_propensity_model, train_value_model
    from leadscope.synth import generate as make
    from leadscope.tables import has_features, has_table
    from training import tracking

    if not has_table(s.raw_dir, "customers"):
        with step(f"generating a synthetic company of {s.customers:,} customers"):
            make(customers=s.customers, seed=s.seed, end=s.world_end, days=s.world_days).write(s.raw_dir)
    else:
        console.print(f"[green]✓[/] data found in {s.raw_dir}")
    if not has_features(s.feature_dir):
        build_features(s)
    else:
        console.print(f"[green]✓[/] features found in {s.feature_dir}")
    trainers = {
        "propensity": lambda: train_propensity_model(s, set_champion=True),
        "churn": lambda: train_churn_model(s, set_champion=None),
        "value": lambda: train_value_model(s),
        "uplift": lambda: train_nba_model(s),
    }
    for name, train in trainers.items():
        if name == "uplift" and not has_table(s.raw_dir, "campaigns"):
            console.print("[yellow]-[/] no campaigns table: next-best-action not trained")
        elif not tracking.has_champion(s, name):
            train()
        else:
            console.print(f"[green]✓[/] model {name}@champion found in MLflow")


def _try_it(s: Settings) -> None:
    """The first-run key (printed once) and curls a user can paste."""
    from leadscope.tables import read_table
    from serving.keys import KeyStore

    ids = read_table(s.raw_dir, "customers", columns=["customer_id"])["customer_id"]
    example = str(ids.iloc[len(ids) // 2])
    token = KeyStore(s.database_url).first_run_key() if s.auth else None
    if token:
        console.print(
            f"\n[bold]Default API key[/] (all scopes; shown this once, only its hash is stored):\n  {token}",
            soft_wrap=True,
            highlight=False,
        )
    key = token or "$LEADSCOPE_API_KEY"
    curl = (
        f"curl -s -X POST http://{s.host}:{s.port}/v1/scores "
        f"-H 'content-type: application/json' -H 'authorization: Bearer {key}' "
        f'-d \'{{"customer_ids": ["{example}"], "models": ["propensity", "churn"]}}\''
    )
    nba_curl = curl.replace("/v1/scores", "/v1/next-best-action").replace(', "models": ["propensity", "churn"]', "")
    curl += f"\n  {nba_curl}"
    hint = "" if token else "\n  (use your key; `leadscope keys create --name me --scope score` makes a new one)"
    console.print(f"\nTry it:\n  {curl}{hint}\n", soft_wrap=True, highlight=False)


def run(skip_serve: Annotated[bool, typer.Option(help="Prepare everything but do not serve.")] = False) -> None:
    """The main job: data → features → model (each only if missing), then serve with a curl example."""
    s = settings()
    _prepare(s)
    _try_it(s)
    if not skip_serve:
        serve(host=None, port=None)
