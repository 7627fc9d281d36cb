"""Who may call what: API keys with scopes (401/403) and a per-key rate limit (429 with Retry-After)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from fastapi import Depends, FastAPI, Request
from fastapi.security import APIKeyHeader, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.datastructures import Headers

from leadscope.settings import Settings
from serving.errors import ApiError
from serving.keys import ApiKey, KeyCache, KeyStore

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key, as an alternative header.")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="leadscope"'}
# The key an in-process call of the console acts as (serving/console/base.py `api`): the console holds a session,
# never the raw key, and calls the API in the same task, where this variable is set. No header can set it.
_ACTING: ContextVar[ApiKey | None] = ContextVar("leadscope_acting_key", default=None)


@contextmanager
def acting_as(key: ApiKey) -> Iterator[None]:
    """Calls of the app made inside this block (in this task) act as `key`: same scopes and rate limit."""
    reset = _ACTING.set(key)
    try:
        yield
    finally:
        _ACTING.reset(reset)


class Guard:
    """Verifies keys against the cached key table and counts requests per key (sliding window: O(1) per key,
    no burst of 2× at window edges as a fixed window allows)."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auth
        self.keys = KeyCache(KeyStore(settings.database_url), settings.key_cache_seconds)
        uri = settings.rate_limit_storage
        storage = _Memory() if uri == "memory://" else storage_from_string(uri)
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.default_rate = parse(settings.rate_limit)
        self._rates: dict[str, RateLimitItem] = {}

    def rate(self, key: ApiKey) -> RateLimitItem:
        if key.rate_limit is None:
            return self.default_rate
        if key.rate_limit not in self._rates:
            self._rates[key.rate_limit] = parse(key.rate_limit)
        return self._rates[key.rate_limit]

    def authorise(self, headers: Headers, scope: str) -> ApiKey:
        """The request's key (its header, or the key an in-process console call acts as) if it may call `scope`."""
        token = token_of(headers)
        acting = _ACTING.get()
        if token is None and acting is not None:
            key = self.keys.active(acting.key_id)  # still active: a revoked key's console calls stop too
            if key is None:
                raise ApiError(401, "unauthenticated", "unknown or revoked API key", None, CHALLENGE)
            return self._within_scope_and_rate(key, scope)
        return self.check(token, scope)

    def check(self, token: str | None, scope: str) -> ApiKey:
        if not token:
            raise ApiError(
                401, "unauthenticated", "missing API key: send 'Authorization: Bearer <key>'", None, CHALLENGE
            )
        key = self.keys.verify(token)
        if key is None:
            raise ApiError(401, "unauthenticated", "unknown or revoked API key", None, CHALLENGE)
        return self._within_scope_and_rate(key, scope)

    def _within_scope_and_rate(self, key: ApiKey, scope: str) -> ApiKey:
        if not key.allows(scope):
            raise ApiError(403, "forbidden", f"this API key lacks the '{scope}' scope")
        item = self.rate(key)
        if not self.limiter.hit(item, key.key_id):
            reset = self.limiter.get_window_stats(item, key.key_id).reset_time
            retry = max(1, math.ceil(reset - time.time()))
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit {key.rate_limit or 'default'} exceeded",
                None,
                {"Retry-After": str(retry)},
            )
        return key


class _Memory(MemoryStorage):
    """limits' in-process storage, sweeping expired counters once a second instead of every 10 ms. Its sweep is a
    threading.Timer that each hit starts anew when the last one ended: under load a hundred thread starts a second,
    each on the request path (Thread.start waits for the thread: py-spy put 4 % of a cold /v1/scores there).
    Counters expire on read anyway (MemoryStorage.get), so the sweep only frees memory; the limits are the same."""

    SWEEP_SECONDS = 1.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # the private hook MemoryStorage.incr/decr call (limits 5)
        if not self.timer.is_alive():
            self.timer = threading.Timer(self.SWEEP_SECONDS, self._MemoryStorage__expire_events)
            self.timer.daemon = True
            self.timer.start()


def require(scope: str) -> object:
    """Route dependency: a valid, unrevoked key with `scope` (admin holds every scope), within its rate."""

    async def check(request: Request) -> ApiKey | None:
        guard: Guard = request.app.state.guard
        if not guard.enabled:
            return None
        key = guard.authorise(request.headers, scope)
        request.state.key_id = key.key_id
        return key

    return Depends(check)


def token_of(headers: Headers) -> str | None:
    """The key as FastAPI's HTTPBearer and APIKeyHeader (auto_error=False) read it: `Authorization: Bearer <key>`,
    else `X-API-Key`. Read here in one pass instead of as two Security sub-dependencies: FastAPI solving those
    cost every request about a tenth of its server time (py-spy, benchmarks/freshness.py). The two schemes stay
    in the OpenAPI document (document_security)."""
    scheme, credentials = get_authorization_scheme_param(headers.get("authorization"))
    if scheme.lower() == "bearer" and credentials:
        return credentials
    return headers.get("x-api-key") or None


def document_security(app: FastAPI) -> None:
    """The OpenAPI document declares both key schemes and, on every /v1 operation, that either one is needed (every
    /v1 route requires a scope: tests/serving/test_auth.py), as FastAPI wrote it when the schemes were Security
    dependencies."""
    base = app.openapi
    schemes = {
        s.scheme_name: s.model.model_dump(by_alias=True, exclude_none=True, mode="json") for s in (bearer, header_key)
    }

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base()
        schema.setdefault("components", {})["securitySchemes"] = schemes
        for path, operations in schema["paths"].items():
            if path.startswith("/v1/"):
                for op in operations.values():
                    op["security"] = [{name: []} for name in schemes]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
