"""create_app(settings): the FastAPI application; models load in the lifespan, not at import."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from leadscope.settings import Settings, get_settings, quiet_environment
from serving import errors
from serving.routers import health, scores
from serving.state import ServingState


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    quiet_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServingState(settings)
        state.load()
        app.state.serving = state
        watcher = asyncio.create_task(state.watch(settings.model_poll_seconds))
        yield
        watcher.cancel()

    app = FastAPI(
        title="leadscope",
        version="0.1.0",
        lifespan=lifespan,
        description="Lead scores with reasons, from Feast features and MLflow models.",
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(scores.router)
    return app
