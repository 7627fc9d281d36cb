"""POST /v1/events (live records in, stored before 202, features online before the answer when they make it in
time) and GET /v1/customers/{id}/scores (the score history, with the reasons that moved)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from features.live import RecordError
from serving import events
from serving.deps import FeaturesState, ReadyState
from serving.errors import ApiError, documented
from serving.security import require
from serving.state import ServingState

router = APIRouter(prefix="/v1", tags=["events"])
ERRORS = documented(400, 401, 403, 413, 422, 429, 503, 504)
INLINE_MAX = 16


@router.post(
    "/events",
    status_code=202,
    response_model=events.EventsAccepted,
    responses=ERRORS,
    summary="Take live records: engagement events, orders, stage changes, customer records",
    dependencies=[require("events")],
)
async def take(
    body: events.EventsRequest,
    state: FeaturesState,
    wait: Annotated[bool, Query(description="Answer once the features are online (false: once stored).")] = True,
) -> events.EventsAccepted:
    """1-1,000 records, idempotent by `id`. Stored durably before the 202; then the customers' features are
    recomputed as of now with the batch build's functions and written to the online store. With `wait` (the
    default) the answer comes once they are, so the next /v1/scores shows them (`applied`); `wait=false` answers
    as soon as the records are stored (bulk loads), the features following within the applier's pass. A refused
    request stores nothing."""
    return await accept(body, state, wait)


async def accept(body: events.EventsRequest, state: ServingState, wait: bool) -> events.EventsAccepted:
    """The route's work once FastAPI has checked the request (serving/fastpath.py calls it too)."""
    live = state.live
    if live is None:
        raise ApiError(503, "features_unavailable", "the real-time loop is not running; see /readyz")
    settings = state.settings

    def check() -> list:
        ids = [r.customer_id for r in body.events]
        known = live.known(ids)  # brings the imported tables up to date first (one stat per table)
        try:
            return events.records(
                body,
                meta=live.meta(),
                known=known,
                event_types=live.base.event_types,
                future_seconds=settings.events_future_seconds,
            )
        except RecordError as exc:
            raise ApiError(422, "invalid_record", str(exc), exc.field) from None

    # the checks of a small request run on the event loop (a thread hop would wait for the interpreter lock behind
    # the scoring requests); storing goes to the intake process (serving/intake.py), which commits concurrent
    # requests together
    recs = check() if len(body.events) <= INLINE_MAX else await run_in_threadpool(check)
    try:
        stored = await live.intake.store(recs)
    except Exception as exc:  # noqa: BLE001 - stored or not, a retry with the same ids stores each once
        raise ApiError(
            503, "storage_unavailable", f"records not confirmed stored ({type(exc).__name__}); retry the same ids"
        ) from None
    fresh = {id(r) for r in stored}
    dups = [r.record_id for r in recs if id(r) not in fresh]
    customers = list(dict.fromkeys(r.customer_id for r in stored))
    applied = not customers
    if customers:
        fut = live.submit(customers)
        if not wait:
            return events.EventsAccepted(accepted=len(stored), duplicates=dups, customers=len(customers), applied=False)
        try:
            applied = bool(await asyncio.wait_for(asyncio.wrap_future(fut), settings.events_apply_wait_seconds))
        except Exception:  # noqa: BLE001 - stored either way: a failed or slow pass is replayed, the client is told
            applied = False
    return events.EventsAccepted(accepted=len(stored), duplicates=dups, customers=len(customers), applied=applied)


class Moved(BaseModel):
    feature: str
    label: str
    before: float | str | None
    after: float | str | None
    impact_change: float


class ScorePoint(BaseModel):
    score: int
    grade: str
    probability: float | None = None


class ScoreChange(BaseModel):
    model: str
    version: str
    at: datetime
    previous: ScorePoint | None
    current: ScorePoint
    moved: list[Moved]
    records: list[str]


class ScoreHistoryResponse(BaseModel):
    customer_id: str
    changes: list[ScoreChange]


@router.get(
    "/customers/{customer_id}/scores",
    response_model=ScoreHistoryResponse,
    responses=documented(400, 401, 403, 404, 422, 429, 503, 504),
    summary="A customer's score history: each grade change or large move, with the reasons that moved most",
    dependencies=[require("score")],
)
async def history(
    customer_id: Annotated[str, Path(min_length=1, max_length=128)],
    state: ReadyState,
    model: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> ScoreHistoryResponse:
    live = state.live
    if live is None:
        raise ApiError(503, "features_unavailable", "the real-time loop is not running; see /readyz")

    def run() -> ScoreHistoryResponse:
        if not live.known([customer_id]):
            raise ApiError(404, "unknown_customer", "no customer with this customer_id", "customer_id")
        return ScoreHistoryResponse(customer_id=customer_id, changes=live.history.of(customer_id, model, limit))

    return await run_in_threadpool(run)
