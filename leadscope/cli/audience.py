"""`leadscope audience lookalike|insight|export`: the same audiences the API builds, from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from leadscope.cli.common import console, fail, output_path, read_ids, settings, split_list, step

audience_app = typer.Typer(help="Lookalike audiences: build, insight, export.", no_args_is_help=True)


def _ready_rows(store, audience_id: str, option: str, index) -> tuple[dict, object]:  # noqa: ANN001
    """(record, population rows) of a ready audience; exit 2 naming the option otherwise."""
    from serving.audiences.store import AudienceUnavailable

    try:
        found = store.ready(audience_id)
    except AudienceUnavailable as exc:
        fail(f"{option}: {exc}")
    return found, store.member_rows(audience_id, index)


@audience_app.command("lookalike")
def audience_lookalike(
    seed: Annotated[Path, typer.Option(help="CSV/parquet of seed customers (column customer_id, or the first).")],
    out: Annotated[Path, typer.Option(help="Members file (.csv or .parquet): customer_id, rank, similarity.")],
    percent: Annotated[float | None, typer.Option(help="Audience size as 0.1-10% of the population.")] = None,
    size: Annotated[int | None, typer.Option(help="Or: audience size in people.")] = None,
    exclude: Annotated[str, typer.Option(help="Comma-separated: seed, customers, opted_out.")] = "seed",
    name: Annotated[str, typer.Option(help="A name marketers will recognise.")] = "lookalike",
) -> None:
    """Build a lookalike audience from a seed file; it is stored like one built through the API (same id)."""
    from leadscope.tables import write_frame
    from serving.audiences import build
    from serving.audiences.store import AudienceStore, Request
    from training import lookalike, population

    if (size is None) == (percent is None):
        fail("give exactly one of --percent and --size")
    if percent is not None and not 0.1 <= percent <= 10:
        fail(f"--percent: {percent} is outside 0.1-10")
    if size is not None and size < 1:
        fail("--size: must be at least 1")
    excl = tuple(split_list(exclude))
    if bad := [e for e in excl if e not in lookalike.EXCLUSIONS]:
        fail(f"--exclude: {bad[0]!r} is not one of {', '.join(lookalike.EXCLUSIONS)}")
    output_path(out)
    s = settings()
    ids = read_ids(seed, "--seed")
    with step("reading the population (feature store, newest snapshot)"):
        pop = population.load(s)
    req = Request(ids, size, percent, excl, name)
    try:
        rows, summary, target = build.resolve(pop, req)
    except ValueError as exc:
        fail(str(exc).replace("seed_customer_ids:", "--seed:"))
    store = AudienceStore(s.database_url)
    audience_id = store.create(req, target, summary)
    with step(f"building {target:,} lookalikes of {len(rows):,} seed customers"):
        build.run_build(s, store, pop, audience_id, req, rows, target, build.tracker(s))
    found = store.get(audience_id)
    if found["status"] != "ready":
        fail(f"build failed: {found['error']}")
    members = store.member_ids(audience_id)
    write_frame(members, out)
    m = found["metrics"]
    console.print(f"[green]✓[/] audience {audience_id}: {len(members):,} members → {out}")
    console.print(
        f"  seed {summary['resolved']:,} resolved, {summary['unknown_count']:,} unknown; held-out seed recall at "
        f"this size {m['val_recall_at_size']:.1%}; weights {m['weights']}; MLflow run {m.get('mlflow_run_id')}"
    )


@audience_app.command("insight")
def audience_insight(
    audience: Annotated[str, typer.Option(help="The audience id (aud_...).")],
    compare: Annotated[str | None, typer.Option(help="Another audience id: overlap.")] = None,
    cross: Annotated[str | None, typer.Option(help="Two attributes, e.g. age_band,competitor_purchase.")] = None,
    top: Annotated[int, typer.Option(min=1, max=50)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (same as the API).")] = False,
) -> None:
    """What sets an audience apart from the population (lift with 95% intervals), and more."""
    from serving.audiences.insight import attributes_of, cross_pair, report
    from serving.audiences.store import AudienceStore
    from training import population, tracking

    s = settings()
    store = AudienceStore(s.database_url)
    pop = population.load(s)
    found, rows = _ready_rows(store, audience, "--audience", pop.index)
    other = _ready_rows(store, compare, "--compare", pop.index)[1] if compare else None
    attrs = attributes_of(pop)
    try:
        pair = cross_pair(cross, attrs)
    except ValueError as exc:
        fail(f"--{exc}")
    champion = tracking.load_champion(s, "propensity") if tracking.has_champion(s, "propensity") else None
    rep = report(
        pop,
        attrs,
        rows,
        champion=champion,
        horizon_days=s.propensity_horizon_days,
        pair=pair,
        other=other,
        compare=compare,
        top=top,
        audience_id=audience,
        size=found["size"],
    )
    if as_json:
        print(json.dumps(rep, indent=2))
        return
    _print_report(found, rep, pair, compare)


def _print_report(found: dict, rep: dict, pair: list[str] | None, compare: str | None) -> None:
    console.print(f"[bold]{found['name']}[/] ({rep['audience_id']}): {rep['size']:,} of {rep['population']:,} people")
    ec = rep["expected_conversion"]
    if ec and ec["rate"] is not None:
        console.print(
            f"  expected {ec['horizon_days']}-day conversion of its {ec['leads']:,} open leads: {ec['rate']:.1%} "
            f"(all open leads {ec['population_rate']:.1%}; {ec['model']} v{ec['version']})"
        )
    console.print("  most distinguishing:")
    for x in rep["distinguishing"]:
        console.print(
            f"    {x['attribute']} = {x['value']:<14} {x['audience_share']:6.1%} vs {x['population_share']:6.1%}  "
            f"lift {x['lift']:.2f} [{x['lift_low']:.2f}, {x['lift_high']:.2f}]  n={x['audience_count']:,}"
        )
    if pair:
        console.print(f"  {pair[0]} × {pair[1]}:")
        for c in rep["cross"]["cells"][:20]:
            console.print(
                f"    {c[pair[0]]:<12} {c[pair[1]]:<12} n={c['audience_count']:>6,}  "
                f"{c['audience_share']:6.1%} vs {c['population_share']:6.1%}  lift {c['lift']:.2f}"
            )
    if "overlap" in rep:
        o = rep["overlap"]
        console.print(
            f"  overlap with {compare}: {o['intersection']:,} in both (jaccard {o['jaccard']:.3f}; "
            f"{o['share_of_audience']:.1%} of this, {o['share_of_compare']:.1%} of that)"
        )


@audience_app.command("export")
def audience_export(
    audience: Annotated[str, typer.Option(help="The audience id (aud_...).")],
    format: Annotated[str, typer.Option(help="meta (Customer List) or google (Customer Match).")],
    out: Annotated[Path, typer.Option(help="The CSV to write.")],
) -> None:
    """The platform's customer-list CSV, identifiers hashed by its rules; members without ads consent left out."""
    from leadscope.tables import read_table
    from serving.audiences.export import FORMATS, contacts_of, export_csv
    from serving.audiences.store import AudienceStore, AudienceUnavailable

    if format not in FORMATS:
        fail(f"--format: {format!r} is not one of {', '.join(FORMATS)}")
    s = settings()
    store = AudienceStore(s.database_url)
    try:
        store.ready(audience)
    except AudienceUnavailable as exc:
        fail(f"--audience: {audience} is {exc.status or 'unknown'}")
    contacts = contacts_of(read_table(s.raw_dir, "customers"))
    text, counts = export_csv(format, contacts, store.member_ids(audience))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    console.print(f"[green]✓[/] {counts['rows']:,} rows → {out} ({counts})")
