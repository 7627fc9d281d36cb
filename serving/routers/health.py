"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from serving import observability
from serving.deps import State
from serving.online import FeatureStoreUnavailable
from serving.schemas import Health, ModelInfo, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(state: State) -> Readiness | JSONResponse:
    """Ready when every model is loaded and the feature store answers a read."""
    if not state.loaded:
        body = Readiness(ready=False, loading=True, models=[], feature_store="loading")
        return JSONResponse(status_code=503, content=body.model_dump())
    store_ok = "unavailable"
    if state.online is not None and state.models:
        try:
            name = next(iter(state.models))
            state.online.rows(name, ["__readiness_probe__"])
            store_ok = "ok"
        except FeatureStoreUnavailable as exc:
            store_ok = f"error: {exc}"
        except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
            store_ok = f"error: {type(exc).__name__}"
    models = [
        ModelInfo(name=m.name, version=m.version, feature_service=m.feature_service, limits=m.limits)
        for m in state.models.values()
    ]
    body = Readiness(
        ready=store_ok == "ok" and not state.problems,
        warming=state.warming,
        models=models,
        feature_store=store_ok,
        live_applier=state.live.applier() if state.live is not None else "thread",
        live_intake=state.live.intake.where() if state.live is not None else "thread",
        live_applier_restarts=state.live.passes.restarts if state.live is not None else 0,
        live_applier_error=state.live.passes.last_error if state.live is not None else None,
    )
    return body if body.ready else JSONResponse(status_code=503, content=body.model_dump())


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text."}},
)
async def metrics() -> Response:
    """Prometheus exposition: per-route latency histograms, errors, model versions, score distributions."""
    payload, content_type = observability.exposition()
    return Response(payload, media_type=content_type)
