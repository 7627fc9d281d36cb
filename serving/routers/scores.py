"""POST /v1/scores (known customers by id → scores with reasons) and POST /v1/scores/batch (NDJSON stream)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from leadscope.schema import SCORED_MODELS
from serving.batches import ScoreBatches
from serving.deps import ReadyState
from serving.errors import ApiError, documented
from serving.schemas import BatchScoreRequest, ModelInfo, ScoreRequest, ScoreResponse
from serving.scoring import score_items
from serving.security import require
from serving.state import ServingState

log = logging.getLogger("leadscope.serving")
router = APIRouter(prefix="/v1", tags=["scores"], dependencies=[require("score")])
BATCH_PATH = "/v1/scores/batch"
INLINE_MAX = 64  # small requests run on the event loop (serving/batches.py): sub-millisecond work, no thread hop
BATCH_CHUNK = 2_000  # ids per online read in a batch: bounded memory, a flush every few hundred ms
OFFLINE_CHUNK = 20_000  # ids per DuckDB read when a batch is read from the build's files (about 1 s of TreeSHAP)
ERRORS = documented(400, 401, 403, 413, 422, 429, 503, 504)


def _models(state: ServingState, requested: list[str]) -> list[str]:
    names = list(dict.fromkeys(requested))
    if unknown := [m for m in names if m not in SCORED_MODELS and m not in state.models]:
        raise ApiError(
            422,
            "unknown_model",
            f"models: {unknown[0]} is neither one of {', '.join(SCORED_MODELS)} nor a trained outcome",
            f"models.{requested.index(unknown[0])}",
        )
    missing = [m for m in names if m not in state.models]
    if missing:
        raise ApiError(503, "model_unavailable", f"model {missing[0]} is not loaded; see /readyz", "models")
    return names


def _infos(state: ServingState, names: list[str]) -> list[ModelInfo]:
    return [
        ModelInfo(name=c.name, version=c.version, feature_service=c.feature_service, limits=c.limits)
        for c in (state.models[m] for m in names)
    ]


@router.post("/scores", response_model=ScoreResponse, summary="Score known customers by id", responses=ERRORS)
async def scores(body: ScoreRequest, state: ReadyState) -> ScoreResponse:
    """Propensity (default), churn and/or value for each id, with the top reasons; unknown ids get an item error."""
    names = _models(state, body.models)
    ids = body.customer_ids
    if len(ids) <= INLINE_MAX:  # scored on the event loop, in one pass with the requests that came with it
        infos, items = await _batches(state).submit(names, ids)
        return ScoreResponse(models=infos, results=items)

    def run() -> ScoreResponse:
        return ScoreResponse(models=_infos(state, names), results=score_items(state, names, ids))

    return await run_in_threadpool(run)


def _batches(state: ServingState) -> ScoreBatches:
    if state.score_batches is None:
        state.score_batches = ScoreBatches(lambda names, ids: (_infos(state, names), score_items(state, names, ids)))
    return state.score_batches


@router.post(
    "/scores/batch",
    summary="Score many customers as a stream of NDJSON lines",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One JSON ScoreItem per line, in request order; models and versions in X-Leadscope-Models.",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        **ERRORS,
    },
)
async def scores_batch(body: BatchScoreRequest, state: ReadyState) -> StreamingResponse:
    """For CRMs scoring 100k+ customers: the response starts at once and streams chunk by chunk, so memory stays
    bounded and the client sees progress. The model versions are fixed at the start of the request."""
    names = _models(state, body.models)
    ids = body.customer_ids
    infos = _infos(state, names)
    offline = await run_in_threadpool(_offline, state) if len(ids) >= state.settings.batch_offline_min else None

    def score(chunk: list[str]) -> list:
        if offline is not None:
            live = _live_customers(state)
            if live is not None:
                return offline.items(state, names, chunk, live)
        return score_items(state, names, chunk)

    async def lines() -> AsyncIterator[bytes]:
        step = OFFLINE_CHUNK if offline is not None else BATCH_CHUNK
        for start in range(0, len(ids), step):
            items = await run_in_threadpool(score, ids[start : start + step])
            yield b"".join(it.__pydantic_serializer__.to_json(it) + b"\n" for it in items)

    headers = {
        "X-Leadscope-Models": ",".join(f"{m.name}:{m.version}" for m in infos),
        "X-Leadscope-Source": "offline" if offline is not None else "online",
    }
    return StreamingResponse(lines(), media_type="application/x-ndjson", headers=headers)


def _offline(state: ServingState) -> object | None:
    """The build's feature files as the source of a large batch (serving/offline.py), or None: the online store
    does not hold the build now (a materialisation under way, say), or it cannot be told."""
    from serving.offline import offline_serving

    try:
        return offline_serving(state)
    except Exception:  # noqa: BLE001 - the online path answers the same items, only slower
        log.warning("batch scoring from the online store: the offline source could not be opened", exc_info=True)
        return None


def _live_customers(state: ServingState) -> set[str] | None:
    """Customers whose live records the build does not hold (their online rows are newer than its files), asked
    again for every chunk; None when the service database cannot say (the chunk is read online)."""
    from features.livelog import LiveLog

    try:
        log_ = state.live.log if state.live is not None else LiveLog(state.settings.database_url)
        return set(log_.unfolded_customers())
    except Exception:  # noqa: BLE001 - the online store answers for every customer
        log.warning("batch scoring: live records could not be listed; this chunk is read online", exc_info=True)
        return None
