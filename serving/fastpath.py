"""POST /v1/scores without FastAPI's per-request machinery, for the requests CRMs send most: valid, authorised,
a few ids. Everything else goes on to the FastAPI route unchanged, which answers exactly as before.

Why: on a score that misses the cache, FastAPI's routing, dependency solving, body validation and response
re-validation cost about as much as the online read and TreeSHAP together (py-spy, benchmarks/freshness.py). Here a
request is checked with the same parts the route uses (the key guard, the ScoreRequest model validating what
`json.loads` read, as FastAPI does; `_models`; ScoreBatches) and answered with the same serializer, so the bytes
are the route's (tests/serving/test_scores.py compares them). Any doubt (another content type, a query string,
invalid JSON or body, an unknown model, a large request, a key the guard refuses) falls through to the route, which
checks everything again in its own order and gives the one error shape. The key guard is asked last, so a request
whose hit it counted is answered here (limits counts only the hits it allows: a refused key falling through is not
counted twice). The request keeps its route for metrics and its key id for the access log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.datastructures import Headers

from serving import observability as obs
from serving.errors import ApiError, api_error_response, features_unavailable_response
from serving.online import FeatureStoreUnavailable
from serving.routers.scores import INLINE_MAX, _batches, _models
from serving.schemas import ScoreRequest, ScoreResponse
from serving.security import token_of

PATH = "/v1/scores"
SCOPE = "score"


@dataclass(frozen=True)
class _Route:
    """What the access log and the metrics read of the route FastAPI would have matched."""

    path: str = PATH


class FastScores:
    route = _Route()

    def __init__(self, app) -> None:  # noqa: ANN001 - ASGI app
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        msg = await receive()  # Limits (outside) has read the whole body and hands it over in one message
        raw = msg.get("body", b"") if msg["type"] == "http.request" else None
        if raw is None or msg.get("more_body", False) or not await self._answer(scope, raw, send):
            await self.app(scope, _replay(msg, receive), send)

    async def _answer(self, scope, raw: bytes, send) -> bool:  # noqa: ANN001
        headers = Headers(scope=scope)
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return False
        fastapi_app = scope["app"]
        state = fastapi_app.state.serving
        if not state.loaded:
            return False
        try:
            body = ScoreRequest.model_validate(json.loads(raw))
            names = _models(state, body.models)
            if len(body.customer_ids) > INLINE_MAX:
                return False
            guard = fastapi_app.state.guard  # last: once it has counted the hit, the request is answered here
            key = guard.check(token_of(headers), SCOPE) if guard.enabled else None
        except Exception:  # noqa: BLE001 - whatever the route would refuse (deep nesting raises RecursionError)
            return False
        scope["route"] = self.route
        if key is not None:
            scope.setdefault("state", {})["key_id"] = key.key_id
        try:
            infos, items = await _batches(state).submit(names, body.customer_ids)
        except FeatureStoreUnavailable as exc:  # as the route's exception handlers answer them
            await features_unavailable_response(exc)(scope, _nothing, send)
            return True
        except ApiError as exc:
            await api_error_response(exc)(scope, _nothing, send)
            return True
        resp = ScoreResponse(models=infos, results=items)
        payload = resp.__pydantic_serializer__.to_json(resp, by_alias=True)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        obs.FAST_SCORES.inc()
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
