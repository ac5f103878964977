"""Rate limits per client address, on Litestar's RateLimitMiddleware.

Two limits: RATE_LIMIT_PER_MINUTE on every API request, and AUTH_RATE_LIMIT_PER_MINUTE on top
of it for the routes that take a password or a refresh token. The client address is the one
the request-context layer computed (TRUSTED_PROXIES decides whether X-Forwarded-For counts).

The counters live in memory (one worker) or in Redis when REDIS_URL is set (shared by every
worker and host). If Redis cannot be reached the limiter lets requests through and logs a
warning: an outage of the limiter's store must not become an outage of the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import CacheObject, RateLimitConfig, RateLimitMiddleware
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.types import Receive, Scope, Send
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.errors import TooManyRequests
from service.settings import Settings

log = logging.getLogger("service.rate_limit")

# Not API traffic: probes, scrapes and documentation must work whatever a client does.
EXEMPT_PATHS = [
    r"^/health",
    r"^/metrics",
    r"^/docs",
    r"^/redoc",
    r"^/openapi\.json",
    r"^/static/",
    r"^/schema",
]
SIGN_IN_ROUTES = frozenset(
    f"{prefix}/auth/{name}" for prefix in ("/api", "/api/v1") for name in ("login", "register", "refresh")
)
GENERAL_STORE = "rate_limit"
SIGN_IN_STORE = "sign_in_rate_limit"
# How long the limiter leaves an unreachable store alone before trying it again.
STORE_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.5
SWEEP_INTERVAL_SECONDS = 60.0


class StoreOutage:
    """Fail open while the store is unreachable, without waiting on it for every request."""

    def __init__(self) -> None:
        self.retry_at = 0.0
        self.down = False

    def skipping(self) -> bool:
        return time.monotonic() < self.retry_at

    def failed(self, exc: Exception) -> None:
        if not self.down:
            log.warning(
                "rate-limit store unreachable; requests are not rate limited until it answers: %s: %s",
                type(exc).__name__,
                exc,
            )
        self.down = True
        self.retry_at = time.monotonic() + STORE_RETRY_SECONDS

    def answered(self) -> None:
        if self.down:
            log.info("rate-limit store reachable again; rate limiting resumed")
        self.down = False


@dataclass
class ClientRateLimitConfig(RateLimitConfig):
    detail: str = "too many requests from this address"
    outage: StoreOutage = field(default_factory=StoreOutage)


class ClientRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's limiter, answering problem+json with Retry-After and failing open on store errors."""

    config: ClientRateLimitConfig

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        outage = self.config.outage
        if outage.skipping() or not await self.should_check_request(request):
            await self.app(scope, receive, send)
            return
        store = self.config.get_store_from_app(app)
        try:
            cache_object = await self._count(self.cache_key_from_request(request), store)
        except (RedisError, OSError) as exc:
            outage.failed(exc)
            cache_object = None
        if cache_object is None:
            await self.app(scope, receive, send)
            return
        outage.answered()
        await self.app(scope, receive, self.create_send_wrapper(send=send, cache_object=cache_object))

    async def _count(self, key: str, store: Store) -> CacheObject | None:
        """Count this request, or raise 429; None when the store went down while it waited its turn."""
        async with self._lock:
            if self.config.outage.skipping():
                return None
            cache_object = await self.retrieve_cached_history(key, store)
            if len(cache_object.history) >= self.max_requests:
                raise TooManyRequests(
                    self.config.detail,
                    retry_after=cache_object.reset - int(time.time()),
                    headers=self.create_response_headers(cache_object),
                )
            await self.set_cached_history(key=key, cache_object=cache_object, store=store)
            return cache_object


def client_address(request: Request[Any, Any, Any]) -> str:
    address = request.scope.get("client_ip")  # type: ignore[call-overload]
    return address if isinstance(address, str) else "unknown"


def is_sign_in(request: Request[Any, Any, Any]) -> bool:
    return request.method == "POST" and request.scope.get("path_template") in SIGN_IN_ROUTES  # type: ignore[call-overload]


class SignInRateLimitMiddleware(ClientRateLimitMiddleware):
    """Its own class, so its counters use keys of their own."""


class RateLimiting:
    """The two limits, the stores they count in, and the lifespan that looks after those stores."""

    def __init__(self, settings: Settings) -> None:
        outage = StoreOutage()
        # Outermost first: on sign-in routes the tighter limit's RateLimit-* headers are the ones sent.
        self.configs = [
            ClientRateLimitConfig(
                rate_limit=("minute", settings.auth_rate_limit_per_minute),
                identifier_for_request=client_address,
                check_throttle_handler=is_sign_in,
                middleware_class=SignInRateLimitMiddleware,
                store=SIGN_IN_STORE,
                detail="too many sign-in attempts from this address",
                outage=outage,
            ),
            ClientRateLimitConfig(
                rate_limit=("minute", settings.rate_limit_per_minute),
                exclude=EXEMPT_PATHS,
                identifier_for_request=client_address,
                middleware_class=ClientRateLimitMiddleware,
                store=GENERAL_STORE,
                outage=outage,
            ),
        ]
        self.redis: Redis | None = None
        self.stores: dict[str, Store]
        if settings.redis_url:
            self.redis = Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
            prefix = settings.redis_key_prefix
            self.stores = {
                name: RedisStore(self.redis, namespace=f"{prefix}:{name}")
                for name in (GENERAL_STORE, SIGN_IN_STORE)
            }
        else:
            self.stores = {GENERAL_STORE: MemoryStore(), SIGN_IN_STORE: MemoryStore()}

    @property
    def middleware(self) -> list[DefineMiddleware]:
        return [config.middleware for config in self.configs]

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        # A memory store only drops an expired key when it is read again: without a sweep, every
        # address ever seen would stay in memory.
        sweeper = None if self.redis else asyncio.create_task(self._sweep_expired())
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            if self.redis is not None:
                await self.redis.aclose()

    async def _sweep_expired(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
            for store in self.stores.values():
                if isinstance(store, MemoryStore):
                    await store.delete_expired()
