"""Lookalike audiences for marketers: build from a seed, page the members, read the insight, export a customer
list in Meta's or Google's format (identifiers hashed by the platform's rules)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from serving.audiences.build import SeedTooSmall, resolve, run_build, tracker
from serving.audiences.export import export_csv
from serving.audiences.insight import attributes_of, cross_pair, report
from serving.audiences.store import AudienceStore, AudienceUnavailable
from serving.audiences.store import Request as BuildRequest
from serving.deps import AudiencePool, Audiences, FeaturesState
from serving.errors import ApiError, documented
from serving.schemas import CustomerId
from serving.security import require
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


async def _found(store: AudienceStore, audience_id: str, field: str = "audience_id") -> dict:
    found = await run_in_threadpool(store.get, audience_id)
    if found is None:
        raise ApiError(404, "not_found", f"no audience with this id ({field})", field)
    return found


async def _ready(store: AudienceStore, audience_id: str, field: str = "audience_id") -> dict:
    try:
        return await run_in_threadpool(store.ready, audience_id)
    except AudienceUnavailable as exc:
        if exc.status is None:
            raise ApiError(404, "not_found", f"no audience with this id ({field})", field) from None
        raise ApiError(409, "not_ready", f"audience is {exc.status}, not ready ({field})", field) from None


@router.post(
    "/lookalike",
    status_code=201,
    response_model=Audience,
    responses={202: {"model": Audience, "description": "Large audience: building; poll GET /v1/audiences/{id}."}}
    | documented(400, 401, 403, 413, 422, 429, 503, 504),
    summary="Build a lookalike audience from a seed",
)
async def create(body: LookalikeRequest, state: FeaturesState, store: Audiences, pool: AudiencePool) -> Response:
    """Deterministic for the same seed list, size, exclusions and feature snapshot. Audiences up to
    `LEADSCOPE_AUDIENCE_SYNC_MAX` members are built in the request (201, status ready); larger ones are built
    in the background (202, status running). Each build is one MLflow run in the `lookalike` experiment."""
    settings = state.settings
    assert state.snapshots is not None
    pop = await run_in_threadpool(state.snapshots.population)
    req = BuildRequest(body.seed_customer_ids, body.size, body.percent, tuple(dict.fromkeys(body.exclude)), body.name)
    try:
        seed_rows, seed, size = resolve(pop, req)
    except SeedTooSmall as exc:
        raise ApiError(422, "seed_too_small", str(exc), "seed_customer_ids") from None
    except ValueError as exc:
        field = str(exc).split(":", 1)[0]
        raise ApiError(422, "invalid_request", str(exc), field) from None
    audience_id = await run_in_threadpool(store.create, req, size, seed)
    job = pool.submit(run_build, settings, store, pop, audience_id, req, seed_rows, size, tracker(settings))
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
    store: Audiences,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Audience:
    """The audience's status; once ready, a page of members by rank (`offset` members skipped)."""
    found = await _found(store, audience_id)
    out = Audience(**found)
    if found["status"] == "ready":
        page = await run_in_threadpool(store.page, audience_id, offset, limit)
        out.members = [Member(**m) for m in page]
        out.next_offset = offset + len(page) if offset + len(page) < found["size"] else None
    return out


@router.get(
    "/{audience_id}/insight",
    responses=documented(400, 401, 403, 404, 409, 422, 429, 503, 504),
    summary="Who the audience is, next to the population",
)
async def insight(
    audience_id: str,
    state: FeaturesState,
    store: Audiences,
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
    found = await _ready(store, audience_id)
    if compare is not None:
        await _ready(store, compare, "compare")
    assert state.snapshots is not None
    pop = await run_in_threadpool(state.snapshots.population)
    attrs = await run_in_threadpool(attributes_of, pop)
    try:
        pair = cross_pair(cross, attrs)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc), "cross") from None

    def compute() -> dict:
        return report(
            pop,
            attrs,
            store.member_rows(audience_id, pop.index),
            champion=state.models.get("propensity"),
            horizon_days=state.settings.propensity_horizon_days,
            pair=pair,
            other=store.member_rows(compare, pop.index) if compare is not None else None,
            compare=compare,
            top=top,
            audience_id=audience_id,
            size=found["size"],
        )

    return await run_in_threadpool(compute)


@router.get(
    "/{audience_id}/export",
    responses={200: {"content": {"text/csv": {}}, "description": "The platform's customer-list CSV."}}
    | documented(400, 401, 403, 404, 409, 422, 429, 504),
    summary="Customer-list file for Meta or Google",
)
async def export(
    audience_id: str,
    state: FeaturesState,
    store: Audiences,
    format: Annotated[Literal["meta", "google"], Query(description="meta: Customer List; google: Customer Match")],
) -> Response:
    """Members with ads consent, identifiers normalised and SHA-256 hashed by the platform's own rules (never raw
    personal data). Counts of members left out are in the X-Leadscope-* headers."""
    await _ready(store, audience_id)
    snapshots = state.snapshots
    assert snapshots is not None

    def build() -> tuple[str, dict]:
        return export_csv(format, snapshots.contacts(), store.member_ids(audience_id))

    text, counts = await run_in_threadpool(build)
    headers = {
        "content-disposition": f'attachment; filename="{audience_id}-{format}.csv"',
        **{f"x-leadscope-{k.replace('_', '-')}": str(v) for k, v in counts.items()},
    }
    return Response(text, media_type="text/csv", headers=headers)
