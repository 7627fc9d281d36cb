"""`leadscope signals deliver|status`: conversion signals to ad platforms."""

from __future__ import annotations

from typing import Annotated

import typer

from leadscope.cli.common import console, settings, step

signals_app = typer.Typer(help="Conversion signals to ad platforms: deliver, status.", no_args_is_help=True)


@signals_app.command("deliver")
def signals_deliver(
    wait: Annotated[bool, typer.Option(help="Wait out retry backoffs until nothing is pending.")] = True,
    max_seconds: Annotated[float, typer.Option(min=1, help="Stop after this long even if rows are pending.")] = 600,
) -> None:
    """Send pending conversion payloads to every enabled platform (batched, retried with backoff)."""
    import httpx

    from serving.signals.ingest import outbox_for

    outbox = outbox_for(settings())
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

    for platform, states in sorted(outbox_for(settings()).status().items()):
        print(f"{platform}\t" + "\t".join(f"{k}={v}" for k, v in sorted(states.items())))
