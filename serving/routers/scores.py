"""POST /v1/scores: known customers by id → propensity with reasons."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from serving.deps import get_state
from serving.errors import ApiError
from serving.schemas import ModelInfo, ScoreRequest, ScoreResponse
from serving.scoring import score_rows
from serving.state import ServingState

router = APIRouter(prefix="/v1", tags=["scores"])
INLINE_MAX = 64  # small requests run on the event loop: sub-millisecond CPU work, no thread hop


@router.post("/scores", response_model=ScoreResponse, summary="Score known customers by id")
async def scores(body: ScoreRequest, state: Annotated[ServingState, Depends(get_state)]) -> ScoreResponse:
    champ = state.models.get("propensity")
    if champ is None:
        raise ApiError(503, "model_unavailable", "the propensity model is not loaded; see /readyz")
    ids = body.customer_ids

    def run() -> ScoreResponse:
        columns = state.online("propensity", ids)
        return ScoreResponse(
            model=ModelInfo(name=champ.name, version=champ.version, feature_service=champ.feature_service),
            results=score_rows(champ.scorer, ids, columns),
        )

    return run() if len(ids) <= INLINE_MAX else await run_in_threadpool(run)
