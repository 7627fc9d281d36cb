"""Pure ASGI middleware (no per-request task or thread): request id + metrics + access log, and limits.

Order (outermost first): Observability → Limits → the app. Limits reads the whole body itself, so a chunked
upload without Content-Length is capped exactly like a declared one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import traceback
import uuid

import orjson

from serving import observability as obs
from serving.errors import body as error_body

log = logging.getLogger("leadscope.access")
errlog = logging.getLogger("leadscope.serving")
RID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
QUIET = {"/healthz", "/readyz", "/metrics"}  # probes and scrapes: metrics yes, access log only at DEBUG


async def send_error(send, status: int, code: str, message: str, headers: list | None = None) -> None:  # noqa: ANN001
    payload = orjson.dumps(error_body(code, message))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": payload})


class Observability:
    def __init__(self, app, access: str = "all") -> None:  # noqa: ANN001 - ASGI app
        self.app = app
        self.access = access  # LEADSCOPE_ACCESS_LOG: all, errors (status >= 400) or off

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        rid = ""
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                rid = v.decode("latin-1")
                break
        if not RID.match(rid):
            rid = uuid.uuid4().hex
        token = obs.request_id.set(rid)
        status = 500
        started = False

        async def send_wrapper(msg) -> None:  # noqa: ANN001
            nonlocal status, started
            if msg["type"] == "http.response.start":
                status, started = msg["status"], True
                msg["headers"] = [*msg.get("headers", []), (b"x-request-id", rid.encode())]
            await send(msg)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:  # noqa: BLE001 - log the type and frames (never the message: it may hold data)
            frames = "".join(traceback.format_tb(exc.__traceback__)[-3:])
            errlog.error("unhandled %s\n%s", type(exc).__name__, frames)
            status = 500
            if not started:
                await send_wrapper({"type": "http.response.start", "status": 500, "headers": []})
                await send(
                    {
                        "type": "http.response.body",
                        "body": orjson.dumps(error_body("internal_error", "unexpected server error")),
                    }
                )
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            dt = time.perf_counter() - t0
            obs.LATENCY.labels(method, path).observe(dt)
            obs.REQUESTS.labels(method, path, str(status)).inc()
            if status >= 400:
                obs.ERRORS.labels(path, str(status)).inc()
            level = logging.DEBUG if path in QUIET and status < 400 else logging.INFO
            wanted = self.access == "all" or (self.access == "errors" and status >= 400)
            if wanted and log.isEnabledFor(level):
                key = scope.get("state", {}).get("key_id")
                log.log(
                    level,
                    "%s %s %d %.1fms",
                    method,
                    path,
                    status,
                    dt * 1000,
                    extra={"route": path, "status": status, "duration_ms": round(dt * 1000, 2), "key_id": key},
                )
            obs.request_id.reset(token)


class Limits:
    """Body size (413, chunked or not) and a timeout to the first response byte (504).

    Not FastAPI's own `max_body_size`: it answers a too-large Content-Length with a plain-text 413, outside the
    one JSON error shape every client parses; the per-path limit here is the same idea in that shape."""

    def __init__(self, app, *, max_body: int, large_bodies: dict[str, int], timeout: float) -> None:  # noqa: ANN001
        self.app, self.max_body, self.large, self.timeout = app, max_body, large_bodies, timeout

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self._timed(scope, receive, send)
            return
        limit = self.large.get(scope["path"], self.max_body)
        for k, v in scope["headers"]:
            if k == b"content-length":
                if not v.isdigit():
                    await send_error(send, 400, "bad_request", "Content-Length is not a number")
                    return
                if int(v) > limit:
                    await send_error(send, 413, "body_too_large", f"request body over {limit:,} bytes")
                    return
        chunks, total = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            total += len(chunk)
            if total > limit:
                await send_error(send, 413, "body_too_large", f"request body over {limit:,} bytes")
                return
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        replayed = False

        async def replay():  # noqa: ANN202
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self._timed(scope, replay, send)

    async def _timed(self, scope, receive, send) -> None:  # noqa: ANN001
        started = False
        try:
            async with asyncio.timeout(self.timeout) as cm:

                async def send_wrapper(msg) -> None:  # noqa: ANN001
                    nonlocal started
                    if msg["type"] == "http.response.start" and not started:
                        started = True
                        cm.reschedule(None)  # a streaming response may run past the timeout once it has started
                    await send(msg)

                await self.app(scope, receive, send_wrapper)
        except TimeoutError:
            if started:
                raise
            await send_error(send, 504, "timeout", f"no response within {self.timeout:g} s")
