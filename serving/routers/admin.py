"""Operator routes (admin scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from serving.deps import get_state
from serving.errors import ApiError, documented
from serving.security import require
from serving.state import ServingState

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[require("admin")])


class Reloaded(BaseModel):
    changed: list[str]


@router.post("/reload", response_model=Reloaded, responses=documented(400, 401, 403, 413, 429, 503, 504))
async def reload(state: Annotated[ServingState, Depends(get_state)]) -> Reloaded:
    """Check the registry for new champions now instead of at the next poll."""
    if not state.loaded or state.store is None:
        raise ApiError(503, "loading", "models and features are still loading; see /readyz")
    return Reloaded(changed=await run_in_threadpool(state.refresh))
