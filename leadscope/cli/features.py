"""`leadscope features build|materialize`: the feature store from the raw tables."""

from __future__ import annotations

import typer

from leadscope.cli.common import console, fail, settings, step
from leadscope.settings import Settings

features_app = typer.Typer(help="Build and load the Feast feature store.", no_args_is_help=True)


def build_features(s: Settings, *, online: bool = True) -> None:
    """The whole feature build (features/ owns its order), with progress and what it built or skipped; `online`
    off: without loading the online store (`leadscope run` loads it beside the trainings)."""
    from features.build import build

    title = "building features, registering them in Feast" + (", materialising the online store" if online else "")
    try:
        with step(title) as update:
            report = build(s, progress=update, online=online)
    except (ValueError, FileNotFoundError) as exc:  # the data cannot be built from: said plainly, nothing changed
        fail(str(exc))
    console.print("  " + ", ".join(f"{k}: {v:,} rows" for k, v in report.rows.items()), soft_wrap=True)
    for view, why in report.skipped.items():
        console.print(f"  [yellow]skipped[/] {view}: {why}", soft_wrap=True)


@features_app.command("build")
def features_build() -> None:
    """Compute feature sources from the raw tables, register them in Feast and materialise online."""
    build_features(settings())


@features_app.command("materialize")
def features_materialize() -> None:
    """Load feature rows newer than the last materialisation into the online store (incremental)."""
    from features import store

    s = settings()
    with step("materialising the online store (incremental)"):
        moved = store.materialize_incremental(store.open_store(s), s)
    for view, (start, end) in moved.items():
        console.print(f"  {view}: {start} → {end}")
    if not moved:
        console.print("  nothing new since the last materialisation")
