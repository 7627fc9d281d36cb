"""POST /v1/conversions (CRM lifecycle events in, durably stored before 202), their delivery status, and the
pending payloads per platform for a manual upload."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from serving.deps import OutboxDep, State
from serving.errors import ApiError, documented
from serving.scoring import expected_values
from serving.security import require
from serving.signals.ingest import Accepted, ConversionBatch, ConversionEvent, ads_consent, identifiers
from serving.signals.platforms import Event
from serving.state import ServingState

router = APIRouter(prefix="/v1/conversions", tags=["conversions"], dependencies=[require("conversions")])
ERRORS = documented(400, 401, 403, 413, 422, 429, 503, 504)


def _predicted(state: ServingState, customer_ids: list[str]) -> dict[str, float]:
    """P(convert) × expected spend (the value model's longest horizon) per known customer, from the champions;
    empty without both models."""
    if not state.loaded or not {"propensity", "value"} <= set(state.models) or not customer_ids:
        return {}
    return expected_values(state, list(dict.fromkeys(customer_ids)))


@router.post("", status_code=202, response_model=Accepted, responses=ERRORS, summary="Take CRM conversion events")
async def take(
    body: ConversionBatch,
    state: State,
    outbox: OutboxDep,
) -> Accepted:
    """Idempotent by event_id. Each event is stored (with its hashed identifiers only) together with one
    delivery row per platform before the 202: a crash after it loses nothing."""
    errors, hashed = [], []
    for i, ev in enumerate(body.events):
        try:
            hashed.append(identifiers(ev))
        except ValueError as exc:
            field = str(exc).split(":", 1)[0]
            errors.append({"field": f"events.{i}.{field}", "message": str(exc)})
    if errors:
        raise ApiError(
            422, "invalid_request", f"{errors[0]['field']}: {errors[0]['message']}", errors[0]["field"], None, errors
        )
    rules = outbox.mapping.stages

    def run() -> dict:
        wanted = [ev.customer_id for ev in body.events if rules[ev.stage].value == "predicted"]
        predicted = _predicted(state, wanted)
        consenting = state.snapshots.ads_consenting() if state.snapshots is not None else frozenset()
        consent = ads_consent(body.events, consenting)
        items, kinds = [], []
        for ev, ids, ok in zip(body.events, hashed, consent, strict=True):
            value, currency, kind = _value(ev, rules[ev.stage].value, predicted)
            items.append(Event(ev.event_id, ev.customer_id, ev.ts, ev.stage, value, currency, ids, ok))
            kinds.append(kind)
        return outbox.add(items, kinds)

    return Accepted(**await run_in_threadpool(run))


def _value(ev: ConversionEvent, rule: str, predicted: dict[str, float]) -> tuple[float | None, str | None, str]:
    if rule == "actual":
        return ev.value, ev.currency, "actual"
    if rule == "predicted" and ev.customer_id in predicted:
        return predicted[ev.customer_id], ev.currency or "USD", "predicted"
    return None, None, "none" if rule == "none" else "unavailable"


@router.get("/export", responses=documented(400, 401, 403, 422, 429, 504), summary="Pending payloads per platform")
async def export(
    platform: Literal["meta", "google", "baidu"],
    outbox: OutboxDep,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> dict:
    """The platform's request bodies for every pending delivery, batched at its limit, for a manual upload
    (nothing is marked as sent; `leadscope signals deliver` sends them)."""
    if platform not in outbox.exporters:
        raise ApiError(422, "platform_disabled", f"platform {platform} is disabled in the mapping", "platform")
    batches = await run_in_threadpool(outbox.batches, platform, limit)
    return {"platform": platform, "batches": batches}


@router.get("/{event_id}", responses=documented(400, 401, 403, 404, 429, 504), summary="Delivery status of one event")
async def status(event_id: str, outbox: OutboxDep) -> dict:
    found = await run_in_threadpool(outbox.event_status, event_id)
    if found is None:
        raise ApiError(404, "not_found", "no conversion event with this event_id", "event_id")
    return found
