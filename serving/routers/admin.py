"""Operator routes (admin scope)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from serving.deps import FeaturesState
from serving.errors import documented
from serving.security import require

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[require("admin")])


class Reloaded(BaseModel):
    changed: list[str]


@router.post("/reload", response_model=Reloaded, responses=documented(400, 401, 403, 413, 429, 503, 504))
async def reload(state: FeaturesState) -> Reloaded:
    """Check the registry for new champions now instead of at the next poll."""
    return Reloaded(changed=await run_in_threadpool(state.refresh))
