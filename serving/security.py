"""Who may call what: API keys with scopes (401/403) and a per-key rate limit (429 with Retry-After)."""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from leadscope.settings import Settings
from serving.errors import ApiError
from serving.keys import ApiKey, KeyCache, KeyStore

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key, as an alternative header.")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="leadscope"'}


class Guard:
    """Verifies keys against the cached key table and counts requests per key (sliding window: O(1) per key,
    no burst of 2× at window edges as a fixed window allows)."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auth
        self.keys = KeyCache(KeyStore(settings.database_url), settings.key_cache_seconds)
        self.limiter = SlidingWindowCounterRateLimiter(storage_from_string(settings.rate_limit_storage))
        self.default_rate = parse(settings.rate_limit)
        self._rates: dict[str, RateLimitItem] = {}

    def rate(self, key: ApiKey) -> RateLimitItem:
        if key.rate_limit is None:
            return self.default_rate
        if key.rate_limit not in self._rates:
            self._rates[key.rate_limit] = parse(key.rate_limit)
        return self._rates[key.rate_limit]

    def check(self, token: str | None, scope: str) -> ApiKey:
        if not token:
            raise ApiError(
                401, "unauthenticated", "missing API key: send 'Authorization: Bearer <key>'", None, CHALLENGE
            )
        key = self.keys.verify(token)
        if key is None:
            raise ApiError(401, "unauthenticated", "unknown or revoked API key", None, CHALLENGE)
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


def require(scope: str) -> object:
    """Route dependency: a valid, unrevoked key with `scope` (admin holds every scope), within its rate."""

    async def check(
        request: Request,
        auth: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
        x_api_key: Annotated[str | None, Security(header_key)],
    ) -> ApiKey | None:
        guard: Guard = request.app.state.guard
        if not guard.enabled:
            return None
        key = guard.check(auth.credentials if auth else x_api_key, scope)
        request.state.key_id = key.key_id
        return key

    return Depends(check)
