"""Score-change webhook subscriptions: create (the signing secret is shown once), list, delete, send a test,
see deliveries, replay one (serving/webhooks.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from serving.errors import ApiError, documented
from serving.security import require
from serving.webhooks import WebhookInputError, Webhooks

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], dependencies=[require("webhooks")])
ERRORS = documented(400, 401, 403, 404, 422, 429, 504)
EndpointId = Annotated[str, Path(min_length=1, max_length=40)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2_000, description="https endpoint (http and loopback: embedded only).")
    models: list[str] = Field(default=["propensity"], min_length=1, max_length=10)
    trigger: Literal["grade_change", "threshold", "delta"] = Field(
        "grade_change", description="grade_change; threshold (the score crosses `threshold`); delta (moves ≥ delta)."
    )
    threshold: float | None = Field(None, ge=0, le=100)
    delta: float | None = Field(None, gt=0, le=100)


class Endpoint(BaseModel):
    id: str
    url: str
    models: list[str]
    trigger: str
    threshold: float | None
    delta: float | None
    active: bool
    failures: int = Field(description="Consecutive failed attempts (0 after a success).")
    last_error: str | None


class Created(Endpoint):
    secret: str = Field(description="The signing secret (whsec_…): shown only in this answer.")


class Delivery(BaseModel):
    id: str = Field(description="The webhook-id header: deduplicate on it (delivery is at least once).")
    endpoint_id: str
    type: str
    status: str
    attempts: int
    last_status: int | None
    reason: str | None
    created_at: datetime
    sent_at: datetime | None


def _hooks(request: Request) -> Webhooks:
    return request.app.state.webhooks


def _models(request: Request, models: list[str]) -> None:
    state = request.app.state.serving
    for i, m in enumerate(models):
        if m not in state.models or m == "value":
            raise ApiError(422, "unknown_model", f"models.{i}: not a scored classifier that is loaded", f"models.{i}")


@router.post("", status_code=201, response_model=Created, responses=ERRORS, summary="Subscribe to score changes")
async def create(body: WebhookCreate, request: Request) -> Created:
    hooks = _hooks(request)
    _models(request, body.models)
    try:
        ep, secret = await run_in_threadpool(
            hooks.create, body.url, body.models, body.trigger, body.threshold, body.delta
        )
    except WebhookInputError as exc:
        raise ApiError(422, "invalid_webhook", str(exc), exc.field) from None
    return Created(**ep.public(), secret=secret)


@router.get("", response_model=list[Endpoint], responses=ERRORS, summary="The subscriptions")
async def list_all(request: Request) -> list[Endpoint]:
    return [Endpoint(**e.public()) for e in await run_in_threadpool(_hooks(request).list)]


@router.delete("/{endpoint_id}", status_code=204, responses=ERRORS, summary="Stop a subscription")
async def delete(endpoint_id: EndpointId, request: Request) -> None:
    if not await run_in_threadpool(_hooks(request).delete, endpoint_id):
        raise ApiError(404, "not_found", "no webhook with this id", "endpoint_id")


@router.post("/{endpoint_id}/test", response_model=Delivery, responses=ERRORS, summary="Send a signed test message")
async def test(endpoint_id: EndpointId, request: Request) -> Delivery:
    hooks = _hooks(request)
    if hooks.get(endpoint_id) is None:
        raise ApiError(404, "not_found", "no webhook with this id", "endpoint_id")

    def run() -> dict:
        with httpx.Client() as client:
            return hooks.test(endpoint_id, client)

    return Delivery(**await run_in_threadpool(run))


@router.get("/{endpoint_id}/deliveries", response_model=list[Delivery], responses=ERRORS, summary="Recent deliveries")
async def deliveries(endpoint_id: EndpointId, request: Request) -> list[Delivery]:
    return [Delivery(**d) for d in await run_in_threadpool(_hooks(request).deliveries, endpoint_id)]


@router.post(
    "/deliveries/{message_id}/replay", response_model=Delivery, responses=ERRORS, summary="Send a message again"
)
async def replay(message_id: Annotated[str, Path(min_length=1, max_length=40)], request: Request) -> Delivery:
    hooks = _hooks(request)
    if not await run_in_threadpool(hooks.replay, message_id):
        raise ApiError(404, "not_found", "no webhook message with this id", "message_id")
    return Delivery(**hooks.message(message_id))
