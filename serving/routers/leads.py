"""POST /v1/leads/score: score a lead that is not stored, from its attributes and recent events inline."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from leadscope.tables import read_feature_meta
from serving import leads
from serving.deps import ReadyState
from serving.errors import ApiError, documented
from serving.routers.scores import _infos, _models
from serving.schemas import ModelInfo, Score, ValueEstimate
from serving.scoring import score_rows, value_rows
from serving.security import require

router = APIRouter(prefix="/v1/leads", tags=["scores"], dependencies=[require("score")])
ERRORS = documented(400, 401, 403, 413, 422, 429, 503, 504)


class LeadScoreResponse(BaseModel):
    models: list[ModelInfo]
    scores: dict[str, Score | ValueEstimate | None]


@router.post("/score", response_model=LeadScoreResponse, responses=ERRORS, summary="Score a lead that is not stored")
async def score_lead(body: leads.LeadScoreRequest, state: ReadyState) -> LeadScoreResponse:
    """Features of the inline lead as of `as_of` (default now), computed with the batch build's own functions,
    scored by the champions with reasons. Nothing is stored: posting the same lead twice gives the same answer."""
    names = _models(state, body.models)

    def run() -> LeadScoreResponse:
        try:
            columns = leads.features(body, read_feature_meta(state.settings.feature_dir))
        except leads.LeadInputError as exc:
            raise ApiError(422, "invalid_lead", str(exc), exc.field) from None
        out = {}
        for m in names:
            model = state.models[m].model
            cols = {f: columns.get(f, [None]) for f in model.encoder.features}
            out[m] = (value_rows if m == "value" else score_rows)(model, cols)[0]
        return LeadScoreResponse(models=_infos(state, names), scores=out)

    return await run_in_threadpool(run)
