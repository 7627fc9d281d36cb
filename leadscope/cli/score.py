"""`leadscope score`: batch scoring of an id file with the champions, the same answers as POST /v1/scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leadscope import outcomes
from leadscope.cli.common import console, fail, output_path, read_ids, settings, split_list, step
from leadscope.schema import SCORED_MODELS


def score(
    input: Annotated[Path, typer.Option("--input", help="CSV with a customer_id column (or ids in the first column).")],
    out: Annotated[Path, typer.Option(help="Output file: .parquet or .csv.")],
    models: Annotated[str, typer.Option(help=f"Comma-separated: {', '.join(SCORED_MODELS)}.")] = "propensity",
    chunk: Annotated[int, typer.Option(min=100, max=50_000, help="Ids per online-store read.")] = 5_000,
) -> None:
    """Batch scoring with the champions, reading features from the online store like the API does."""
    import pandas as pd
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from leadscope.tables import write_frame
    from serving.batch import flatten
    from serving.scoring import score_items
    from serving.state import ServingState

    names = split_list(models)
    trained = outcomes.names(settings())
    bad = [m for m in names if m not in SCORED_MODELS and m not in trained]
    if bad or not names:
        choices = ", ".join((*SCORED_MODELS, *trained))
        fail(f"--models: unknown model {bad[0] if bad else '(none)'} (choose {choices})")
    output_path(out)
    ids = read_ids(input, "--input")
    state = ServingState(settings())
    with step("loading models and the feature store"):
        state.load(names=tuple(names), optional=())
    if state.problems:
        fail("; ".join(state.problems))
    parts = []
    columns = [TimeRemainingColumn(), MofNCompleteColumn(), BarColumn()]
    with Progress(*Progress.get_default_columns()[:1], *columns, console=console) as bar:
        task = bar.add_task("scoring", total=len(ids))
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            parts.append(flatten(score_items(state, names, part), names))
            bar.advance(task, len(part))
    result = pd.concat(parts, ignore_index=True)
    write_frame(result, out)
    unknown = int(result["error"].notna().sum())
    console.print(f"[green]✓[/] {len(result):,} rows → {out} ({unknown:,} unknown ids)")
