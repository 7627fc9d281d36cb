"""POST /v1/scores: known customers by id → propensity and churn with reasons."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from serving.deps import get_state
from serving.errors import ApiError
from serving.schemas import ItemError, ModelInfo, ScoreItem, ScoreRequest, ScoreResponse
from serving.scoring import score_rows, value_rows
from serving.state import ServingState

router = APIRouter(prefix="/v1", tags=["scores"])
INLINE_MAX = 64  # small requests run on the event loop: sub-millisecond CPU work, no thread hop
UNKNOWN = ItemError(code="unknown_customer", message="no features for this customer_id in the online store")


@router.post("/scores", response_model=ScoreResponse, summary="Score known customers by id")
async def scores(body: ScoreRequest, state: Annotated[ServingState, Depends(get_state)]) -> ScoreResponse:
    """Propensity (default) and/or churn for each id, with the top reasons; unknown ids get an item error."""
    names = list(dict.fromkeys(body.models))
    missing = [m for m in names if m not in state.models]
    if missing:
        raise ApiError(503, "model_unavailable", f"model {missing[0]} is not loaded; see /readyz", "models")
    ids = body.customer_ids

    def run() -> ScoreResponse:
        scored = {
            m: (value_rows if m == "value" else score_rows)(state.models[m].scorer, state.online(m, ids)) for m in names
        }
        items = []
        for i, cid in enumerate(ids):
            if all(scored[m][i] is None for m in names):
                items.append(ScoreItem(customer_id=cid, error=UNKNOWN))
            else:
                items.append(ScoreItem(customer_id=cid, **{m: scored[m][i] for m in names}))
        infos = [
            ModelInfo(name=c.name, version=c.version, feature_service=c.feature_service)
            for c in (state.models[m] for m in names)
        ]
        return ScoreResponse(models=infos, results=items)

    return run() if len(ids) <= INLINE_MAX else await run_in_threadpool(run)
