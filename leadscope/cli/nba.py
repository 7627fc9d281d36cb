"""`leadscope nba plan`: one action per customer under a budget and channel capacities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leadscope.cli.common import console, fail, output_path, settings, step

nba_app = typer.Typer(help="Next-best-action: budgeted plans for an audience.", no_args_is_help=True)


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

    from leadscope import catalogue as catalogue_lib
    from leadscope.tables import read_optional, read_table, write_frame
    from serving.audiences.store import AudienceStore, AudienceUnavailable
    from training import nba, population, tracking

    output_path(out)
    s = settings()
    try:
        cat = catalogue_lib.load(s.actions_catalogue)
        caps = cat.capacities(capacity)
    except catalogue_lib.CatalogueError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(f"--capacity: {exc}")
    if not tracking.has_champion(s, nba.NAME):
        fail("no next-best-action model is registered; run `leadscope train nba` first")
    pop = population.load(s)
    rows: slice | object = slice(None)
    if audience:
        store = AudienceStore(s.database_url)
        try:
            store.ready(audience)
        except AudienceUnavailable as exc:
            fail(f"--audience: {audience} is {exc.status or 'unknown'}")
        rows = store.member_rows(audience, pop.index)
    frame = pop.frame.iloc[rows].reset_index(drop=True)
    champion = tracking.load_champion(s, nba.NAME)
    with step(f"planning {len(frame):,} customers"):
        customers, log = read_table(s.raw_dir, "customers"), read_optional(s.raw_dir, "campaigns")
        scored = nba.score_frame(champion.model, cat, frame, customers, log, pd.Timestamp(pop.as_of))
        result = nba.plan(scored, budget, caps, cat.nothing.id)
    result.insert(0, "customer_id", frame["customer_id"].to_numpy())
    write_frame(result, out)
    spent, gain = result["cost"].sum(), result["expected_incremental_value"].sum()
    console.print(
        f"[green]✓[/] {out}: {int((result['action_id'] != cat.nothing.id).sum()):,} of {len(result):,} contacted, "
        f"spend {spent:,.2f} of {budget:,.2f}, expected incremental value {gain:,.2f} "
        f"(uplift v{champion.version})"
    )
    for (channel, action), g in result.groupby(["channel", "action_id"]):
        console.print(
            f"  {action:<16} {channel:<20} {len(g):>7,}  value {g['expected_incremental_value'].sum():>10,.2f}"
        )
