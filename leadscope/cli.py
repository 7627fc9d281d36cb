"""The `leadscope` command line.

This module is the composition root: it is the one kernel module that reaches up into features/,
training/ and serving/, and only lazily inside commands, so importing the kernel stays cheap and acyclic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from leadscope.settings import Settings, get_settings, quiet_environment

app = typer.Typer(help="leadscope: lead scoring and audience insight.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
features_app = typer.Typer(help="Build and load the Feast feature store.", no_args_is_help=True)
train_app = typer.Typer(help="Train a model and register it in MLflow.", no_args_is_help=True)
app.add_typer(features_app, name="features")
app.add_typer(train_app, name="train")
console = Console(stderr=True)
T = TypeVar("T")


@contextmanager
def step(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner while a long step runs, then a ✓ line with its duration."""
    t0 = time.perf_counter()
    with console.status(f"[bold]{title}…") as status:
        yield lambda sub: status.update(f"[bold]{title}…[/] {sub}")
    console.print(f"[green]✓[/] {title} [dim]({time.perf_counter() - t0:.1f} s)[/]")


def _settings() -> Settings:
    quiet_environment()
    return get_settings()


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
    """Load the newest feature rows into the online store."""
    from features import store

    settings = _settings()
    with step("materialising the online store"):
        store.materialize(store.open_store(settings), settings)


@train_app.command("propensity")
def train_propensity(
    no_champion: Annotated[bool, typer.Option(help="Register only; do not move the champion alias.")] = False,
) -> None:
    """Train the lead-propensity model, log it to MLflow and register it."""
    _train(_settings(), set_champion=not no_champion)


@app.command()
def serve(host: str | None = None, port: int | None = None) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from serving.app import create_app

    settings = _settings()
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level="info", access_log=False)


@app.command()
def run(skip_serve: Annotated[bool, typer.Option(help="Prepare everything but do not serve.")] = False) -> None:
    """The main job: data → features → model (each only if missing), then serve with a curl example."""
    from leadscope.synth import generate as make
    from training import tracking

    settings = _settings()
    if not (settings.raw_dir / "customers.parquet").exists():
        with step(f"generating a synthetic company of {settings.customers:,} customers"):
            make(customers=settings.customers, seed=settings.seed, end=settings.world_end,
                 days=settings.world_days).write(settings.raw_dir)
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
    example = _example_id(settings)
    curl = (f"curl -s -X POST http://{settings.host}:{settings.port}/v1/scores "
            f"-H 'content-type: application/json' -d '{{\"customer_ids\": [\"{example}\"]}}'")
    console.print(f"\nTry it:\n  {curl}\n", soft_wrap=True, highlight=False)
    if not skip_serve:
        serve(host=None, port=None)


def _build_features(settings: Settings) -> None:
    from features import store
    from features.build import build

    with step("building features") as update:
        counts = build(settings, progress=update)
    console.print("  " + ", ".join(f"{k}: {v:,} rows" for k, v in counts.items()))
    with step("registering feature views in Feast"):
        fs = store.apply(settings)
    with step("materialising the online store"):
        store.materialize(fs, settings)


def _train(settings: Settings, *, set_champion: bool) -> None:
    from training import propensity

    with step("training the propensity model") as update:
        m = propensity.train(settings, progress=update, set_champion=set_champion)
    oracle = f" (oracle {m['oracle_roc_auc']:.4f}, ratio {m['auc_vs_oracle']:.3f})" if "oracle_roc_auc" in m else ""
    console.print(f"  holdout ROC-AUC {m['roc_auc']:.4f}{oracle}, PR-AUC {m['pr_auc']:.4f}, "
                  f"lift@10% {m['lift_top_decile']:.2f}; registered propensity v{m['version']}"
                  + (" as champion" if set_champion else ""))


def _example_id(settings: Settings) -> str:
    import pandas as pd

    ids = pd.read_parquet(settings.raw_dir / "customers.parquet", columns=["customer_id"])["customer_id"]
    return str(ids.iloc[len(ids) // 2])


if __name__ == "__main__":
    app()
