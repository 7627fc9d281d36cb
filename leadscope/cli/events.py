"""`leadscope events post F` (live records in bulk, the same checks and path as POST /v1/events) and
`leadscope webhooks create|list|test|replay` (score-change subscriptions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from leadscope.cli.common import console, fail, settings, step

events_app = typer.Typer(help="Live records (events, orders, stage changes, customer records).", no_args_is_help=True)
webhooks_app = typer.Typer(help="Score-change webhooks: create, list, test, replay.", no_args_is_help=True)
BATCH = 1_000
COLUMNS = {"id", "type", "customer_id", "ts", "channel", "event_type", "amount", "category", "is_refund", "stage",
           "created_at"}  # fmt: skip


def _rows(path: Path) -> list[dict]:
    """Records from JSON Lines (one record per line, as POST /v1/events takes them) or CSV (the record fields as
    columns; any other column is a customer attribute of `customer` rows; empty cells are absent)."""
    if not path.exists():
        fail(f"FILE: no file at {path}")
    if path.suffix in (".jsonl", ".ndjson"):
        out = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    fail(f"line {n}: not a JSON object")
        return out
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is the user's input problem
        fail(f"FILE: cannot read {path.name} ({type(exc).__name__})")
    out = []
    for row in df.to_dict("records"):
        rec = {k: v for k, v in row.items() if k in COLUMNS and v != ""}
        if rec.get("type") == "customer":
            rec["attributes"] = {k: v for k, v in row.items() if k not in COLUMNS and v != ""}
        if "amount" in rec:
            rec["amount"] = _number(rec["amount"])
        out.append(rec)
    return out


def _number(v: str) -> float | str:
    try:
        return float(v)
    except ValueError:
        return v  # refused by the check, naming the field


@events_app.command("post")
def post(
    file: Annotated[Path, typer.Argument(help="Records: .jsonl (as the API takes them) or .csv.")],
) -> None:
    """Store and apply live records in bulk: every record is checked first (a refused file stores nothing), then
    stored and its customers' features recomputed and written online, batch by batch. Running servers follow."""
    from pydantic import ValidationError
    from rich.progress import track

    from features.live import RecordError
    from serving import events
    from serving.live import Live
    from serving.state import ServingState, load
    from serving.webhooks import Webhooks

    s = settings()
    if file.exists() and file.stat().st_size > s.import_max_file_bytes:
        fail(f"FILE: {file.name} is larger than LEADSCOPE_IMPORT_MAX_FILE_BYTES ({s.import_max_file_bytes:,} bytes)")
    rows = _rows(file)
    if not rows:
        fail(f"FILE: {file.name} holds no records")
    with step("loading models and features"):
        state = ServingState(s)
        load(state)
    if state.online is None:
        fail("features: the online store is unavailable (" + "; ".join(state.problems) + ")")
    lv = Live(s, state, Webhooks(s.database_url, production=s.profile == "production"))
    state.live = lv
    batches = []
    known: set[str] = set()
    for start in range(0, len(rows), BATCH):
        part = rows[start : start + BATCH]
        try:
            req = events.EventsRequest(events=part)
        except ValidationError as exc:
            e = exc.errors()[0]
            loc = [str(p) for p in e["loc"] if p not in ("event", "order", "stage", "customer")]
            row = start + int(loc[1]) + 1 if len(loc) > 1 and loc[1].isdigit() else start + 1
            fail(f"record {row}: {'.'.join(loc[2:]) or 'record'}: {e['msg']}")
        ids = [r.customer_id for r in req.events]
        known |= lv.known([i for i in ids if i not in known])
        try:
            recs = events.records(
                req,
                meta=lv.meta(),
                known=known,
                event_types=lv.base.fresh().event_types,
                future_seconds=s.events_future_seconds,
            )
        except RecordError as exc:
            _, i, *rest = exc.field.split(".")
            fail(f"record {start + int(i) + 1}: {'.'.join(rest)}: {str(exc).split(': ', 1)[-1]}")
        known |= {r.customer_id for r in recs if r.kind == "customer"}
        batches.append(recs)
    stored = dups = 0
    for recs in track(batches, description="storing and applying", console=console):
        new = lv.log.add(recs)
        stored, dups = stored + len(new), dups + len(recs) - len(new)
        if new:
            lv.apply(list(dict.fromkeys(r.customer_id for r in new)))
    console.print(f"  {stored:,} records stored and applied, {dups:,} duplicates (already stored)")


@webhooks_app.command("create")
def create(
    url: Annotated[str, typer.Option(help="The endpoint (https; http and loopback only embedded).")],
    models: Annotated[str, typer.Option(help="Comma-separated scored models.")] = "propensity",
    trigger: Annotated[str, typer.Option(help="grade_change, threshold or delta.")] = "grade_change",
    threshold: Annotated[float | None, typer.Option(min=0, max=100, help="Score a threshold trigger watches.")] = None,
    delta: Annotated[float | None, typer.Option(min=0.5, max=100, help="Points a delta trigger needs.")] = None,
) -> None:
    """Subscribe an endpoint; prints its id and the signing secret (shown only now)."""
    from serving.webhooks import WebhookInputError, Webhooks

    s = settings()
    if trigger not in ("grade_change", "threshold", "delta"):
        fail("--trigger: choose grade_change, threshold or delta")
    try:
        ep, secret = Webhooks(s.database_url, production=s.profile == "production").create(
            url, [m.strip() for m in models.split(",") if m.strip()], trigger, threshold, delta
        )
    except WebhookInputError as exc:
        fail(f"--{exc.field}: {str(exc).split(': ', 1)[-1]}")
    print(f"{ep.id}\t{secret}")
    console.print("  keep the secret: it is not shown again (verify signatures with any Standard Webhooks library)")


@webhooks_app.command("list")
def list_() -> None:
    """Subscriptions with their failure state."""
    from serving.webhooks import Webhooks

    for e in Webhooks(settings().database_url).list():
        state = "active" if e.active else "deleted"
        print(f"{e.id}\t{e.url}\t{','.join(e.models)}\t{e.trigger}\t{state}\tfailures={e.failures}")


@webhooks_app.command("test")
def test(endpoint: Annotated[str, typer.Argument(help="The subscription id (ep_…).")]) -> None:
    """Send a signed webhook.test message to the endpoint now."""
    import httpx

    from serving.webhooks import Webhooks

    hooks = Webhooks(settings().database_url)
    if hooks.get(endpoint) is None:
        fail(f"ENDPOINT: no webhook {endpoint}")
    with httpx.Client() as client:
        got = hooks.test(endpoint, client)
    print(f"{got['id']}\t{got['status']}\t{got['last_status']}\t{got['reason'] or ''}")
    if got["status"] != "sent":
        raise typer.Exit(1)


@webhooks_app.command("replay")
def replay(message: Annotated[str, typer.Argument(help="The message id (msg_…, the webhook-id header).")]) -> None:
    """Send a message again now (a failed one, or one the receiver lost)."""
    import httpx

    from serving.webhooks import Webhooks

    hooks = Webhooks(settings().database_url)
    if not hooks.replay(message):
        fail(f"MESSAGE: no webhook message {message}")
    with httpx.Client() as client:
        hooks.deliver_once(client, only=[message])
    got = hooks.message(message)
    print(f"{got['id']}\t{got['status']}\t{got['last_status']}\t{got['reason'] or ''}")
