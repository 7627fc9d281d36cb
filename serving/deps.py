"""Typed dependencies of the routers (the FastAPI template's way): what the app holds, and readiness checks
that answer 503 with a reason instead of each router repeating them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import Depends, Request

from serving.audiences.store import AudienceStore
from serving.errors import ApiError
from serving.signals.outbox import Outbox
from serving.state import ServingState


async def get_state(request: Request) -> ServingState:
    # async: a sync dependency would cost every request a thread hop
    return request.app.state.serving


async def ready_state(request: Request) -> ServingState:
    """The state once loading has finished (503 `loading` before). Reads the app's state itself rather than
    through get_state: each dependency FastAPI solves costs every request (the scoring path counts them)."""
    state: ServingState = request.app.state.serving
    if not state.loaded:
        raise ApiError(503, "loading", "models and features are still loading; see /readyz")
    return state


async def features_state(state: Annotated[ServingState, Depends(ready_state)]) -> ServingState:
    """The loaded state with a working feature store (503 `features_unavailable` otherwise)."""
    if state.online is None:
        raise ApiError(503, "features_unavailable", "the feature store is not available; see /readyz")
    return state


async def get_audiences(request: Request) -> AudienceStore:
    return request.app.state.audiences


async def get_audience_pool(request: Request) -> ThreadPoolExecutor:
    return request.app.state.audience_pool


async def get_outbox(request: Request) -> Outbox:
    return request.app.state.outbox


State = Annotated[ServingState, Depends(get_state)]
ReadyState = Annotated[ServingState, Depends(ready_state)]
FeaturesState = Annotated[ServingState, Depends(features_state)]
Audiences = Annotated[AudienceStore, Depends(get_audiences)]
AudiencePool = Annotated[ThreadPoolExecutor, Depends(get_audience_pool)]
OutboxDep = Annotated[Outbox, Depends(get_outbox)]
