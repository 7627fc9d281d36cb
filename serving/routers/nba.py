"""POST /v1/next-best-action: what to do next with each customer, ranked by expected incremental value."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from leadscope.catalogue import CatalogueError
from serving import nba
from serving.deps import FeaturesState
from serving.errors import ApiError, documented
from serving.schemas import CustomerId, ItemError, ModelInfo
from serving.security import require

router = APIRouter(prefix="/v1/next-best-action", tags=["next-best-action"], dependencies=[require("score")])
MAX_IDS = 1_000


class NbaRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"customer_ids": ["C0000001"]}]})
    customer_ids: list[CustomerId] = Field(min_length=1, max_length=MAX_IDS, description=f"1 to {MAX_IDS:,} ids.")
    max_actions: int = Field(3, ge=1, le=20, description="At most this many ranked actions per customer.")


class Reason(BaseModel):
    feature: str
    label: str
    value: float | str | None
    impact: float = Field(description="Signed contribution to this action's estimated uplift (TreeSHAP).")


class RankedAction(BaseModel):
    action_id: str
    channel: str
    expected_incremental_value: float = Field(description="uplift × value − cost, > 0 for every listed action.")
    uplift: float = Field(description="Estimated change in P(respond) the action causes.")
    value: float = Field(description="Estimated value of a response from this customer.")
    cost: float
    reasons: list[Reason]


class Excluded(BaseModel):
    action_id: str
    reason: str


class NbaItem(BaseModel):
    customer_id: str
    recommended: str | None = Field(None, description="The best action, or the do-nothing action when none pays.")
    actions: list[RankedAction] | None = None
    excluded: list[Excluded] | None = None
    error: ItemError | None = None


class NbaResponse(BaseModel):
    model: ModelInfo
    items: list[NbaItem]


@router.post("", response_model=NbaResponse, responses=documented(400, 401, 403, 413, 422, 429, 503, 504))
async def next_best_action(body: NbaRequest, state: FeaturesState) -> NbaResponse:
    """Actions ranked by expected incremental value (what the action changes × what a response is worth − its
    cost), only those the customer is eligible for (consent, reachability, lifecycle stage, cooldown, contact
    caps) and whose estimated uplift is positive; `recommended` is the do-nothing action when nothing pays.
    Unknown ids get a per-item error."""
    if state.nba is None:
        raise ApiError(503, "model_unavailable", "no next-best-action model is registered; run `leadscope train nba`")
    try:
        cat = nba.catalogue(state)
    except CatalogueError as exc:
        raise ApiError(503, "catalogue_invalid", str(exc)) from None
    champ = state.nba
    items = await run_in_threadpool(nba.recommend, state, cat, body.customer_ids, body.max_actions)
    return NbaResponse(
        model=ModelInfo(name=champ.name, version=champ.version, feature_service=champ.feature_service),
        items=[NbaItem(**i) for i in items],
    )
