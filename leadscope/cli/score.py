"""`leadscope score`: batch scoring of an id file with the champions, the same answers as POST /v1/scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leadscope import outcomes
from leadscope.cli.common import OUTPUT_SUFFIXES, console, fail, output_path, read_ids, settings, split_list, step
from leadscope.schema import SCORED_MODELS

SOURCES = ("offline", "online")


def score(
    input: Annotated[Path, typer.Option("--input", help="CSV with a customer_id column (or ids in the first column).")],
    out: Annotated[Path, typer.Option(help="Output file: .parquet, .csv or .ndjson.")],
    models: Annotated[str, typer.Option(help=f"Comma-separated: {', '.join(SCORED_MODELS)}.")] = "propensity",
    reasons: Annotated[
        str, typer.Option(help="top3: the three strongest reasons per model; none: probabilities only (faster).")
    ] = "top3",
    source: Annotated[
        str,
        typer.Option(
            help="offline: the last build's feature files, read in columns (fast; live records since the build are "
            "not in them); online: the online store, as the API reads it."
        ),
    ] = "offline",
    chunk: Annotated[int, typer.Option(min=100, max=200_000, help="Ids per read and scoring pass.")] = 50_000,
) -> None:
    """Batch scoring with the champions: the answers POST /v1/scores gives for the same ids, written as they
    are computed (memory stays bounded), with progress."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from serving.batch import FrameWriter, columns_of, flatten
    from serving.state import ServingState

    names = split_list(models)
    trained = outcomes.names(settings())
    bad = [m for m in names if m not in SCORED_MODELS and m not in trained]
    if bad or not names:
        choices = ", ".join((*SCORED_MODELS, *trained))
        fail(f"--models: unknown model {bad[0] if bad else '(none)'} (choose {choices})")
    if reasons not in ("top3", "none"):
        fail(f"--reasons: {reasons!r} is not one of top3, none")
    if source not in SOURCES:
        fail(f"--source: {source!r} is not one of {', '.join(SOURCES)}")
    if source == "online" and reasons == "none":
        fail("--reasons none: only with --source offline (the online path always explains)")
    output_path(out, suffixes=(*OUTPUT_SUFFIXES, ".ndjson"))
    ids = read_ids(input, "--input")
    state = ServingState(settings())
    with step("loading models and the feature store"):
        state.load(names=tuple(names), optional=())
    if state.problems:
        fail("; ".join(state.problems))
    if source == "offline":
        waiting = _unfolded()
        if waiting:
            console.print(
                f"[yellow]![/] {waiting:,} customers have live records not yet in the feature files: their scores "
                "here are as of the last build (run `leadscope features build` first, or --source online)"
            )
        from serving.offline import batch_scores

        models_of = {m: (state.models[m].model, state.online.services[m]) for m in names}
        frames = batch_scores(settings(), models_of, ids, reasons=reasons, chunk=chunk)
    else:
        from serving.scoring import score_items

        frames = (flatten(score_items(state, names, ids[s : s + chunk]), names) for s in range(0, len(ids), chunk))
    writer = FrameWriter(out, columns_of({m: state.models[m].model for m in names}, reasons == "top3"))
    unknown = 0
    columns = [TimeRemainingColumn(), MofNCompleteColumn(), BarColumn()]
    try:
        with Progress(*Progress.get_default_columns()[:1], *columns, console=console) as bar:
            task = bar.add_task("scoring", total=len(ids))
            for df in frames:
                writer.write(df)
                unknown += int(df["error"].notna().sum())
                bar.advance(task, len(df))
        writer.close()
    except BaseException:
        writer.abort()  # no half-written file under the requested name
        raise
    console.print(f"[green]✓[/] {writer.rows:,} rows → {out} ({unknown:,} unknown ids)")


def _unfolded() -> int:
    from features.livelog import LiveLog

    try:
        return len(LiveLog(settings().database_url).unfolded_customers())
    except Exception:  # noqa: BLE001 - a missing service database holds no live records
        return 0
