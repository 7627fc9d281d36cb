"""`leadscope serve` (the HTTP API) and `leadscope run` (the main job: data → features → models → serve)."""

from __future__ import annotations

from typing import Annotated

import typer

from leadscope.cli.common import console, settings
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
    from leadscope.cli.prepare import prepare  # not at the top: `python -m leadscope.cli.prepare` runs it as __main__

    s = settings()
    prepare(s)
    _try_it(s)
    if not skip_serve:
        serve(host=None, port=None)
