"""create_app(settings): the FastAPI application. Models and features load in the background after start-up:
/healthz answers at once, /readyz (and every scoring route) says 503 until they are loaded. With several workers
on one socket (background_load off), each worker loads before it accepts its first connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from leadscope.settings import Settings, get_settings, quiet_environment
from serving import errors
from serving.middleware import Limits, Observability
from serving.routers import admin, conversions, health, scores
from serving.security import Guard
from serving.signals.ingest import outbox_for
from serving.state import ServingState


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    quiet_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServingState(settings)
        app.state.serving = state
        app.state.guard = Guard(settings)
        app.state.outbox = outbox_for(settings)

        async def load_then_watch() -> None:
            await asyncio.to_thread(state.load)
            await state.watch(settings.model_poll_seconds)

        if not settings.background_load:
            # workers sharing one socket: a worker that is still loading must not take connections at all
            await asyncio.to_thread(state.load)
        task = asyncio.create_task(
            load_then_watch() if settings.background_load else state.watch(settings.model_poll_seconds)
        )
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = FastAPI(
        title="leadscope",
        version="0.2.0",
        lifespan=lifespan,
        description="Lead scores with reasons, from Feast features and MLflow models. Every /v1 route needs an API "
        "key (`Authorization: Bearer <key>` or `X-API-Key`) with the route's scope; /healthz, /readyz and /metrics "
        "are open.",
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(scores.router)
    app.include_router(conversions.router)
    app.include_router(admin.router)
    app.add_middleware(
        Limits,
        max_body=settings.max_body_bytes,
        large_bodies={scores.BATCH_PATH: settings.max_batch_body_bytes},
        timeout=settings.request_timeout_seconds,
    )
    app.add_middleware(Observability)
    return app


def factory() -> FastAPI:
    """For `uvicorn --factory` and multi-worker serving (each worker a fresh process): settings and logging from
    the environment."""
    from serving.observability import configure_logging

    settings = Settings()
    configure_logging(settings.log_format)
    return create_app(settings)
