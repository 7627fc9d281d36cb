"""POST /v1/scores and POST /v1/events without FastAPI's per-request machinery, for the requests CRMs send most:
valid, authorised, a few ids or records. Everything else goes on to the FastAPI route unchanged, which answers
exactly as before.

Why: on a score that misses the cache, FastAPI's routing, dependency solving, body validation and response
re-validation cost about as much as the online read and TreeSHAP together (py-spy, benchmarks/freshness.py); under
the mixed load, FastAPI's part of the 10 % event requests cost more server time than the 90 % fast scores. Here a
request is checked with the same parts the route uses (the key guard, the request model validating what
`json.loads` read, as FastAPI does; the route's own function for the work) and answered with the same serializer,
so the bytes are the route's (tests/serving/test_scores.py and test_events.py compare them). Any doubt (another
content type, another query string, invalid JSON or body, an unknown model, a large request, a key the guard
refuses, a state the route would refuse) falls through to the route, which checks everything again in its own
order and gives the one error shape. The key guard is asked last, so a request whose hit it counted is answered
here (limits counts only the hits it allows: a refused key falling through is not counted twice). The request
keeps its route for metrics and its key id for the access log.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel
from starlette.datastructures import Headers

from serving import events as live_events
from serving import observability as obs
from serving.errors import ApiError, api_error_response, features_unavailable_response
from serving.online import FeatureStoreUnavailable
from serving.routers import events as events_route
from serving.routers.scores import INLINE_MAX, _batches, _models
from serving.schemas import ScoreRequest, ScoreResponse
from serving.state import ServingState

EVENTS_MAX = 16  # records: larger requests (bulk loads) take the route, whose checks run in its thread pool
WAITS = {b"": True, b"wait=true": True, b"wait=false": False}  # the query strings answered here


@dataclass(frozen=True)
class _Route:
    """What the access log and the metrics read of the route FastAPI would have matched."""

    path: str


@dataclass(frozen=True)
class _Fast:
    scope: str  # the key scope the route requires
    status: int
    # the request → the work (None: leave it to the route); raises what the route would answer
    check: Callable[[ServingState, bytes, bytes], Callable[[], Awaitable[BaseModel]] | None]
    counter: object


def _scores(state: ServingState, raw: bytes, query: bytes) -> Callable[[], Awaitable[BaseModel]] | None:
    if query:
        return None
    body = ScoreRequest.model_validate(json.loads(raw))
    names = _models(state, body.models)
    if len(body.customer_ids) > INLINE_MAX:
        return None

    async def run() -> BaseModel:
        infos, items = await _batches(state).submit(names, body.customer_ids)
        return ScoreResponse(models=infos, results=items)

    return run


def _events(state: ServingState, raw: bytes, query: bytes) -> Callable[[], Awaitable[BaseModel]] | None:
    wait = WAITS.get(query)
    if wait is None or state.online is None or state.live is None:
        return None
    body = live_events.EventsRequest.model_validate(json.loads(raw))
    if len(body.events) > EVENTS_MAX:
        return None
    return lambda: events_route.accept(body, state, wait)


ROUTES = {
    "/v1/scores": _Fast("score", 200, _scores, obs.FAST_SCORES),
    "/v1/events": _Fast("events", 202, _events, obs.FAST_EVENTS),
}


class FastPaths:
    def __init__(self, app, paths: tuple[str, ...] = tuple(ROUTES)) -> None:  # noqa: ANN001 - ASGI app
        self.app = app
        self.routes = {p: (ROUTES[p], _Route(p)) for p in paths}

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        fast = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if fast is None:
            await self.app(scope, receive, send)
            return
        msg = await receive()  # Limits (outside) has read the whole body and hands it over in one message
        raw = msg.get("body", b"") if msg["type"] == "http.request" else None
        if raw is None or msg.get("more_body", False) or not await self._answer(*fast, scope, raw, send):
            await self.app(scope, _replay(msg, receive), send)

    async def _answer(self, fast: _Fast, route: _Route, scope, raw: bytes, send) -> bool:  # noqa: ANN001
        headers = Headers(scope=scope)
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return False
        fastapi_app = scope["app"]
        state = fastapi_app.state.serving
        if not state.loaded:
            return False
        try:
            work = fast.check(state, raw, scope["query_string"])
            if work is None:
                return False
            guard = fastapi_app.state.guard  # last: once it has counted the hit, the request is answered here
            key = guard.authorise(headers, fast.scope) if guard.enabled else None
        except Exception:  # noqa: BLE001 - whatever the route would refuse (deep nesting raises RecursionError)
            return False
        scope["route"] = route
        if key is not None:
            scope.setdefault("state", {})["key_id"] = key.key_id
        fast.counter.inc()
        try:
            resp = await work()
        except FeatureStoreUnavailable as exc:  # as the route's exception handlers answer them
            await features_unavailable_response(exc)(scope, _nothing, send)
            return True
        except ApiError as exc:
            await api_error_response(exc)(scope, _nothing, send)
            return True
        payload = resp.__pydantic_serializer__.to_json(resp, by_alias=True)
        await send(
            {
                "type": "http.response.start",
                "status": fast.status,
                "headers": [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        return True


async def _nothing() -> dict:
    return {"type": "http.disconnect"}


def _replay(first: dict, receive):  # noqa: ANN001, ANN202
    sent = False

    async def again() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return again
