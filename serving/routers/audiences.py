"""Lookalike audiences for marketers: build from a seed, page the members, read the insight, export a customer
list in Meta's or Google's format (identifiers hashed by the platform's rules)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from serving.audiences import (
    AudienceStore,
    SeedTooSmall,
    attributes_of,
    export_csv,
    report,
    resolve,
    run_build,
    tracker,
)
from serving.audiences import Request as BuildRequest
from serving.deps import get_state
from serving.errors import ApiError, documented
from serving.schemas import CustomerId
from serving.security import require
from serving.state import ServingState
from training.lookalike import EXCLUSIONS, MIN_SEED

router = APIRouter(prefix="/v1/audiences", tags=["audiences"], dependencies=[require("audiences")])
MAX_SEED = 200_000
Exclusion = Literal["seed", "customers", "opted_out"]
assert set(Exclusion.__args__) == set(EXCLUSIONS)


class LookalikeRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"seed_customer_ids": ["C0000001", "C0000002"], "percent": 1.0}]},
    )
    seed_customer_ids: list[CustomerId] = Field(
        min_length=1,
        max_length=MAX_SEED,
        description=f"The customers to find more of; at least {MIN_SEED} must be known. Unknown ids are reported.",
    )
    size: int | None = Field(None, ge=1, description="Audience size (at most 10% of the population).")
    percent: float | None = Field(None, ge=0.1, le=10, description="Or: audience size as 0.1–10% of the population.")
    exclude: list[Exclusion] = Field(
        default=["seed"],
        max_length=3,
        description="Leave out the seed, existing customers, people without ads consent.",
    )
    name: str = Field("lookalike", min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_size(self) -> LookalikeRequest:
        if (self.size is None) == (self.percent is None):
            raise ValueError("give exactly one of size and percent")
        return self


class SeedSummary(BaseModel):
    given: int
    distinct: int
    resolved: int
    unknown_count: int
    unknown: list[str] = Field(description="Up to 100 of the ids that matched no customer.")


class Member(BaseModel):
    customer_id: str
    rank: int
    similarity: float = Field(description="Blended percentile score in [0, 1]; 1 = most alike.")


class Audience(BaseModel):
    audience_id: str
    name: str
    status: Literal["running", "ready", "failed"]
    size: int
    requested: dict
    exclude: list[str]
    seed: SeedSummary
    metrics: dict | None = None
    error: str | None = None
    created_at: str | None = None
    finished_at: str | None = None
    members: list[Member] | None = None
    next_offset: int | None = None


def _store(request: Request) -> AudienceStore:
    return request.app.state.audiences


def _ready(state: ServingState) -> None:
    if not state.loaded:
        raise ApiError(503, "loading", "models and features are still loading; see /readyz")
    if state.store is None:
        raise ApiError(503, "features_unavailable", "the feature store is not available; see /readyz")


async def _found(store: AudienceStore, audience_id: str, field: str = "audience_id") -> dict:
    found = await run_in_threadpool(store.get, audience_id)
    if found is None:
        raise ApiError(404, "not_found", f"no audience with this id ({field})", field)
    return found


@router.post(
    "/lookalike",
    status_code=201,
    response_model=Audience,
    responses={202: {"model": Audience, "description": "Large audience: building; poll GET /v1/audiences/{id}."}}
    | documented(400, 401, 403, 413, 422, 429, 503, 504),
    summary="Build a lookalike audience from a seed",
)
async def create(
    body: LookalikeRequest, request: Request, state: Annotated[ServingState, Depends(get_state)]
) -> Response:
    """Deterministic for the same seed list, size, exclusions and feature snapshot. Audiences up to
    `LEADSCOPE_AUDIENCE_SYNC_MAX` members are built in the request (201, status ready); larger ones are built
    in the background (202, status running). Each build is one MLflow run in the `lookalike` experiment."""
    _ready(state)
    settings = state.settings
    store = _store(request)
    pop = await run_in_threadpool(state.get_population)
    req = BuildRequest(body.seed_customer_ids, body.size, body.percent, tuple(dict.fromkeys(body.exclude)), body.name)
    try:
        seed_rows, seed, size = resolve(pop, req)
    except SeedTooSmall as exc:
        raise ApiError(422, "seed_too_small", str(exc), "seed_customer_ids") from None
    except ValueError as exc:
        field = str(exc).split(":", 1)[0]
        raise ApiError(422, "invalid_request", str(exc), field) from None
    audience_id = await run_in_threadpool(store.create, req, size, seed)
    job = request.app.state.audience_pool.submit(
        run_build, settings, store, pop, audience_id, req, seed_rows, size, tracker(settings)
    )
    if size <= settings.audience_sync_max:
        await asyncio.wrap_future(job)
    found = await run_in_threadpool(store.get, audience_id)
    return JSONResponse(Audience(**found).model_dump(), status_code=201 if found["status"] != "running" else 202)


@router.get(
    "/{audience_id}",
    response_model=Audience,
    responses=documented(400, 401, 403, 404, 422, 429, 504),
    summary="Status and members",
)
async def get(
    audience_id: str,
    request: Request,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Audience:
    """The audience's status; once ready, a page of members by rank (`offset` members skipped)."""
    store = _store(request)
    found = await _found(store, audience_id)
    out = Audience(**found)
    if found["status"] == "ready":
        page = await run_in_threadpool(store.page, audience_id, offset, limit)
        out.members = [Member(**m) for m in page]
        out.next_offset = offset + len(page) if offset + len(page) < found["size"] else None
    return out


async def _members(
    state: ServingState, store: AudienceStore, audience_id: str, field: str = "audience_id"
) -> tuple[dict, np.ndarray]:
    found = await _found(store, audience_id, field)
    if found["status"] != "ready":
        raise ApiError(409, "not_ready", f"audience is {found['status']}, not ready ({field})", field)
    ids = await run_in_threadpool(store.member_ids, audience_id)
    pop = await run_in_threadpool(state.get_population)
    rows = pop.index.get_indexer(ids["customer_id"])
    return found, rows[rows >= 0]


@router.get(
    "/{audience_id}/insight",
    responses=documented(400, 401, 403, 404, 409, 422, 429, 503, 504),
    summary="Who the audience is, next to the population",
)
async def insight(
    audience_id: str,
    request: Request,
    state: Annotated[ServingState, Depends(get_state)],
    compare: Annotated[str | None, Query(max_length=40, description="Another audience's id: overlap.")] = None,
    cross: Annotated[
        str | None,
        Query(max_length=200, description="Two attributes, comma-separated, e.g. age_band,competitor_purchase"),
    ] = None,
    top: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict:
    """Attribute values that most distinguish the audience (lift with counts and 95% interval), an optional
    cross-analysis of two attributes, an optional overlap with another audience, and the expected conversion rate
    of its open leads from the propensity champion."""
    _ready(state)
    store = _store(request)
    found, rows = await _members(state, store, audience_id)
    other = None
    if compare is not None:
        _, other = await _members(state, store, compare, "compare")
    pop = await run_in_threadpool(state.get_population)
    attrs = await run_in_threadpool(_attributes, state)
    pair = None
    if cross is not None:
        pair = [a.strip() for a in cross.split(",")]
        unknown = [a for a in pair if a not in attrs]
        if len(pair) != 2 or unknown or pair[0] == pair[1]:
            raise ApiError(
                422, "invalid_request", f"cross: give two different attributes of {', '.join(attrs.columns)}", "cross"
            )

    def compute() -> dict:
        return report(
            pop,
            attrs,
            rows,
            champion=state.models.get("propensity"),
            horizon_days=state.settings.propensity_horizon_days,
            pair=pair,
            other=other,
            compare=compare,
            top=top,
            audience_id=audience_id,
            size=found["size"],
        )

    return await run_in_threadpool(compute)


def _attributes(state: ServingState):  # noqa: ANN202 - pandas DataFrame
    return attributes_of(state.get_population())


@router.get(
    "/{audience_id}/export",
    responses={200: {"content": {"text/csv": {}}, "description": "The platform's customer-list CSV."}}
    | documented(400, 401, 403, 404, 409, 422, 429, 504),
    summary="Customer-list file for Meta or Google",
)
async def export(
    audience_id: str,
    request: Request,
    state: Annotated[ServingState, Depends(get_state)],
    format: Annotated[Literal["meta", "google"], Query(description="meta: Customer List; google: Customer Match")],
) -> Response:
    """Members with ads consent, identifiers normalised and SHA-256 hashed by the platform's own rules (never raw
    personal data). Counts of members left out are in the X-Leadscope-* headers."""
    store = _store(request)
    found = await _found(store, audience_id)
    if found["status"] != "ready":
        raise ApiError(409, "not_ready", f"audience is {found['status']}, not ready to export", "audience_id")

    def build() -> tuple[str, dict]:
        return export_csv(format, state.customers(), store.member_ids(audience_id))

    text, counts = await run_in_threadpool(build)
    headers = {
        "content-disposition": f'attachment; filename="{audience_id}-{format}.csv"',
        **{f"x-leadscope-{k.replace('_', '-')}": str(v) for k, v in counts.items()},
    }
    return Response(text, media_type="text/csv", headers=headers)
