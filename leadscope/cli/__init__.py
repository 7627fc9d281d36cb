"""The `leadscope` command line: one module per command group, assembled here.

The CLI is the composition root: it is the one part of the kernel that reaches up into features/, graphs/,
training/ and serving/, and only lazily inside commands, so importing the kernel stays cheap and acyclic. Nothing
imports it.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from leadscope.cli import audience, data, events, features, keys, nba, score, serve, signals, train
from leadscope.cli.common import console

app = typer.Typer(
    help="leadscope: lead scoring and audience insight.", no_args_is_help=True, pretty_exceptions_enable=False
)
app.command("generate")(data.generate)
app.command("import")(data.import_)
app.command("run")(serve.run)
app.command("serve")(serve.serve)
app.command("score")(score.score)
app.command("promote")(train.promote)
app.command("monitor")(train.monitor)
app.add_typer(features.features_app, name="features")
app.add_typer(train.train_app, name="train")
app.add_typer(data.identities_app, name="identities")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(signals.signals_app, name="signals")
app.add_typer(events.events_app, name="events")
app.add_typer(events.webhooks_app, name="webhooks")
app.add_typer(nba.nba_app, name="nba")
app.add_typer(audience.audience_app, name="audience")


def main() -> None:
    """Entry point: expected failures (missing data, no trained model yet, bad input) end with a one-line
    message and exit code 2 instead of a traceback."""
    run_command(app)


def run_command(command: Callable[[], object]) -> None:
    """Run a command as `leadscope` runs one: a typer.Exit raised outside typer (a step of `leadscope run` in its
    own process, leadscope/cli/prepare.py) becomes its exit code, the expected failures exit 2 with one line."""
    import click
    import mlflow

    from leadscope.engine import EngineUnavailable

    try:
        command()
    except (click.exceptions.Exit, typer.Exit) as exc:
        raise SystemExit(exc.exit_code) from None
    except EngineUnavailable as exc:  # LEADSCOPE_ENGINE=ray and Ray did not start or answer
        console.print(f"[red]error:[/] {exc} (LEADSCOPE_ENGINE=local runs without Ray)", soft_wrap=True)
        raise SystemExit(2) from None
    except (FileNotFoundError, ValueError, mlflow.exceptions.MlflowException) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
        console.print(
            "  (run `leadscope run --skip-serve` or `leadscope import ...` first if data or models are missing)"
        )
        raise SystemExit(2) from None
