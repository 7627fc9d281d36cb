"""Data in: `leadscope generate` (a synthetic company), `leadscope import` (a company's own tables) and
`leadscope identities resolve` (CRM records → people)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from leadscope.cli.common import console, fail, settings, step


class ExportStyle(StrEnum):
    parquet = "parquet"
    crm = "crm"


identities_app = typer.Typer(help="Resolve CRM records to people.", no_args_is_help=True)


def generate(
    customers: Annotated[
        int | None, typer.Option(min=100, help="Number of people to simulate (default: LEADSCOPE_CUSTOMERS).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed; same seed, same data (default: LEADSCOPE_SEED).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <data_dir>/raw).")] = None,
    days: Annotated[int | None, typer.Option(min=120, help="Days of history (default: LEADSCOPE_WORLD_DAYS).")] = None,
    export_style: Annotated[
        ExportStyle, typer.Option(help="parquet: the canonical tables; crm: CSV as spreadsheets and CRMs export it.")
    ] = ExportStyle.parquet,
) -> None:
    """Write a synthetic company's canonical tables and the ground truth behind them (truth/ as parquet). Above
    200,000 customers it is simulated as independent regions in worker processes (leadscope/synth/regions.py)."""
    from leadscope.synth import generate as make
    from leadscope.synth.export import write_export
    from leadscope.synth.regions import REGION, write_company

    s = settings()
    # the settings `leadscope run` generates with, so both commands make the same company
    customers = s.customers if customers is None else customers
    seed = s.seed if seed is None else seed
    days = s.world_days if days is None else days
    target = out or (s.raw_dir if export_style is ExportStyle.parquet else s.resolve(s.data_dir) / "export")
    if export_style is ExportStyle.crm and customers > REGION:
        fail(f"--export-style crm: at most {REGION:,} customers (CSV as a CRM exports it is for trying the import)")
    with step(f"generating {customers:,} customers (seed {seed})"):
        if export_style is ExportStyle.parquet:
            rows = write_company(target, customers=customers, seed=seed, end=s.world_end, days=days)
        else:
            company = make(customers=customers, seed=seed, end=s.world_end, days=days)
            company.write(target, tables=False)
            write_export(company.tables, target, seed=seed)
            rows = {name: len(df) for name, df in company.tables.items()}
    for name, n in rows.items():
        console.print(f"  {name:<13} {n:>10,} rows")
    console.print(f"  written to {target}")


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
    schema: Annotated[
        Path | None, typer.Option(help="YAML pinning column kinds per table, e.g. customers: {plan_code: category}.")
    ] = None,
) -> None:
    """Validate and import a company's own tables, all or none; invalid rows go to the report, never silently
    away, and a refused import changes nothing."""
    import pandas as pd

    from features import contract
    from features.contract import load_pinned
    from features.files import FileRefused, Limits
    from features.ingest import import_files
    from leadscope.tables import write_frame

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
        fail("give at least one file, e.g. --customers customers.csv")
    s = settings()
    try:
        pinned = load_pinned(schema) if schema else None
    except ValueError as exc:
        fail(str(exc))
    limits = Limits(s.import_max_rows, s.import_max_cell_bytes, s.import_max_file_bytes)
    try:
        results = import_files(s.raw_dir, files, limits=limits, pinned=pinned)
    except FileRefused as exc:
        fail(f"refused: {exc}. Nothing was imported.")
    rejects = pd.concat([r.rejects for r in results], ignore_index=True)
    write_frame(rejects, report)
    for r in results:
        console.print(
            f"  {r.table:<13} read {r.read:>10,}  accepted {r.accepted:>10,}  rejected rows "
            f"{r.rejects['row'].nunique():>8,}"
        )
        custom = {c: k for c, k in (r.kinds or {}).items() if c not in contract.COLUMNS[r.table]}
        if custom:
            console.print("    custom columns: " + ", ".join(f"{c} ({k})" for c, k in custom.items()), soft_wrap=True)
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
    from graphs.identity import pair_scores, resolve
    from leadscope.tables import read_table
    from training import oracle

    s = settings()
    customers = read_table(s.raw_dir, "customers")
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
    if oracle.available(s):
        sc = pair_scores(r.person, oracle.person_ids(s))
        console.print(
            f"  vs the generator's planted duplicates: precision {sc['precision']:.4f}, "
            f"recall {sc['recall']:.4f} ({sc['true_pairs']:.0f} true pairs)"
        )
    if out:
        r.person.rename("person_id").rename_axis("customer_id").reset_index().to_parquet(out, index=False)
        console.print(f"  written to {out}")
