"""create_app(settings): the FastAPI application. Models and features load in the background after start-up:
/healthz answers at once, /readyz (and every scoring route) says 503 until they are loaded. With several workers
on one socket (background_load off), each worker loads before it accepts its first connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from leadscope.settings import Settings, get_settings, quiet_environment
from serving import console, errors, scoring
from serving.applier_process import Child, deliver_forever_thread
from serving.audiences.store import AudienceStore
from serving.fastpath import FastPaths
from serving.live import Live
from serving.middleware import Limits, Observability
from serving.outbox import Policy
from serving.routers import admin, audiences, conversions, events, health, leads, nba, scores, webhooks
from serving.security import Guard, document_security
from serving.signals.ingest import outbox_for
from serving.signals.outbox import Outbox
from serving.state import ServingState, load
from serving.webhooks import Webhooks


def lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shut-down: what the app holds (serving state, key guard, outbox, audience store and worker),
    the background load and registry watch, and the optional signal deliverer."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        state = ServingState(settings)
        app.state.serving = state
        app.state.guard = Guard(settings)
        app.state.outbox = outbox_for(settings)
        app.state.audiences = AudienceStore(settings.database_url)
        app.state.audiences.orphans_failed()
        app.state.webhooks = Webhooks(
            settings.database_url,
            Policy(max_attempts=settings.webhooks_max_attempts, backoff_cap=3600.0),
            production=settings.profile == "production",
        )
        state.live = Live(settings, state, app.state.webhooks, process=settings.live_apply_process, spawn=Child)
        stop = threading.Event()
        # one audience build at a time: it uses the cores the requests need (2 here), so builds queue
        app.state.audience_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audience")

        warm = (lambda: prewarm(state)) if settings.prewarm else None
        state.warming = warm is not None  # from the start: /readyz must not say "warm" before the prewarm began

        async def load_then_watch() -> None:
            if settings.background_load:
                await asyncio.to_thread(load, state)
            await asyncio.to_thread(replay, state)
            if warm is not None:
                await asyncio.to_thread(warm)
            await state.watch(settings.model_poll_seconds, warm)

        if not settings.background_load:
            # workers sharing one socket: a worker that is still loading must not take connections at all
            await asyncio.to_thread(load, state)
        task = asyncio.create_task(load_then_watch())
        tasks = [task]
        if settings.webhooks_deliver_seconds:
            threading.Thread(
                target=deliver_forever_thread,
                args=(state.live, settings.webhooks_deliver_seconds, stop),
                name="webhooks",
                daemon=True,
            ).start()
        if settings.signals_deliver_seconds:
            tasks.append(asyncio.create_task(deliver_forever(app.state.outbox, settings.signals_deliver_seconds)))
        yield
        stop.set()
        state.live.sent.set()
        await state.live.aclose()
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        app.state.audience_pool.shutdown(wait=False, cancel_futures=True)

    return run


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    quiet_environment()
    app = FastAPI(
        title="leadscope",
        version=version("leadscope"),
        lifespan=lifespan(settings),
        description="Lead scores with reasons, from Feast features and MLflow models. Every /v1 route needs an API "
        "key (`Authorization: Bearer <key>` or `X-API-Key`) with the route's scope; /healthz, /readyz and /metrics "
        "are open.",
    )
    routers = (health, scores, leads, events, webhooks, conversions, audiences, nba, admin)
    errors.install(app, [*(m.router for m in routers), console.router])  # first: the console wraps its handlers
    for module in routers:
        app.include_router(module.router)
    console.install(app)
    fast = (("/v1/scores",) if settings.scores_fast_path else ()) + (
        ("/v1/events",) if settings.events_fast_path else ()
    )
    if fast:
        app.add_middleware(FastPaths, paths=fast)  # inside Limits: body size and timeout apply
    app.add_middleware(
        Limits,
        max_body=settings.max_body_bytes,
        large_bodies={
            scores.BATCH_PATH: settings.max_batch_body_bytes,
            "/console/audiences": settings.console_max_upload_bytes + 65536,
        },
        timeout=settings.request_timeout_seconds,
    )
    app.add_middleware(Observability, access=settings.access_log)
    document_security(app)
    return app


def replay(state: ServingState) -> None:
    """Apply stored live records whose features never reached the online store (a crash, an outage)."""
    if state.live is None or state.online is None:
        return
    try:
        if n := state.live.replay():
            logging.getLogger("leadscope.live").info("replayed live records of %d customers", n)
    except Exception as exc:  # noqa: BLE001 - records stay stored and are replayed at the next start
        logging.getLogger("leadscope.live").warning("live replay failed: %s", type(exc).__name__)


def prewarm(state: ServingState) -> None:
    """Fill the cache; a store that cannot answer leaves it cold (requests then say why), it never stops the
    registry watch."""
    try:
        scoring.prewarm(state)
        console.warm(state)  # the console's first lead search and audience page
    except Exception as exc:  # noqa: BLE001 - logged; /readyz reports the store's state
        logging.getLogger("leadscope.serving").warning("cache prewarm failed: %s", exc)
    finally:
        state.warming = False


async def deliver_forever(outbox: Outbox, every_seconds: float) -> None:
    """Send due conversion signals in the background (each worker may: rows are claimed with a lease)."""
    import httpx

    log = logging.getLogger("leadscope.signals")
    with httpx.Client() as client:
        while True:
            try:
                counts = await asyncio.to_thread(outbox.deliver, client, until_empty=False, max_seconds=every_seconds)
                if counts:
                    log.info("signals delivered: %s", dict(counts))
            except Exception as exc:  # noqa: BLE001 - a failed round is retried at the next one
                log.warning("signals delivery round failed: %s", type(exc).__name__)
            await asyncio.sleep(every_seconds)


def factory() -> FastAPI:
    """For `uvicorn --factory` and multi-worker serving (each worker a fresh process): settings and logging from
    the environment."""
    from serving.observability import configure_logging

    settings = Settings()
    configure_logging(settings.log_format)
    return create_app(settings)
