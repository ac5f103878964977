"""Rate limits per client address: fixed one-minute windows counted in memory or in Redis.

Two limits: RATE_LIMIT_PER_MINUTE on every API request, and AUTH_RATE_LIMIT_PER_MINUTE on top
of it for the routes that take a password or a refresh token. The client address is the one
the request-context layer computed (TRUSTED_PROXIES decides whether X-Forwarded-For counts).

Why not Litestar's RateLimitMiddleware: it keeps a sliding history of every request's timestamp
per client, JSON-encoded in the store and read then rewritten under a per-process lock. That is
O(limit) work per request, serialises all requests of a worker, and is not atomic across hosts
sharing Redis (two hosts can read the same history and both write it back). A counter per
client and window is one atomic `INCR` in Redis (one round trip) or one dict update in memory.

If Redis cannot be reached the limiter lets requests through and logs one warning: an outage
of the limiter's store must not become an outage of the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from litestar import Litestar
from litestar.middleware.base import DefineMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.http.errors import TooManyRequests
from service.http.middleware import RESPONSE_HEADERS_KEY
from service.settings import Settings

log = logging.getLogger("service.rate_limit")

WINDOW_SECONDS = 60
# Not API traffic: probes, scrapes and documentation must work whatever a client does.
EXEMPT_PREFIXES = ("/health", "/metrics", "/docs", "/redoc", "/openapi.json", "/static/", "/schema")
# (method, route): everything that checks a password or spends a refresh token, including a
# password change on PATCH /me, which checks the current password, and every two-factor code check.
SIGN_IN_ROUTES = frozenset(
    (method, f"{prefix}/auth/{name}")
    for prefix in ("/api", "/api/v1")
    for method, name in (
        ("POST", "login"),
        ("POST", "register"),
        ("POST", "refresh"),
        ("PATCH", "me"),
        ("DELETE", "me"),
        ("POST", "2fa/verify"),
        ("POST", "2fa/totp"),
        ("POST", "2fa/totp/confirm"),
        ("DELETE", "2fa/totp"),
        ("POST", "2fa/backup-codes"),
    )
)
# How long the limiter leaves an unreachable store alone before trying it again.
STORE_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.5
# INCR and, for a new window's key, its expiry: atomic, one round trip.
_REDIS_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class Counter(Protocol):
    async def hit(self, key: str) -> int:
        """Count one request under `key` (which names its window) and return the window's total."""


class MemoryCounter:
    """Counts for one worker. Keys of past windows are swept once a minute."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def hit(self, key: str) -> int:
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        return count

    def sweep(self, current_window: int) -> None:
        suffix = f":{current_window}"
        for key in [key for key in self.counts if not key.endswith(suffix)]:
            del self.counts[key]


class RedisCounter:
    """Counts shared by every worker and host using the same Redis and key prefix."""

    def __init__(self, redis: Redis) -> None:
        self.script = redis.register_script(_REDIS_HIT)

    async def hit(self, key: str) -> int:
        return int(await self.script(keys=[key], args=[WINDOW_SECONDS + 1]))


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


class Limit:
    def __init__(self, name: str, per_minute: int, detail: str) -> None:
        self.name = name
        self.per_minute = per_minute
        self.detail = detail
        self.limit_value = str(per_minute).encode()
        self.policy = f"{per_minute};w={WINDOW_SECONDS}".encode()


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limiting: RateLimiting) -> None:
        self.app = app
        self.limiting = limiting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiting = self.limiting
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES) or limiting.outage.skipping():
            await self.app(scope, receive, send)
            return
        address: str = scope.get("client_ip") or "unknown"  # type: ignore[typeddict-item,assignment]
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        reset = (window + 1) * WINDOW_SECONDS - int(now)
        # Sign-in routes count against their own limit first, then the general one; the response
        # headers describe the first.
        limits = [limiting.general]
        if (scope["method"], scope.get("path_template")) in SIGN_IN_ROUTES:  # type: ignore[typeddict-item]
            limits.insert(0, limiting.sign_in)
        try:
            counts = [await self._hit(limit, address, window, reset) for limit in limits]
        except (RedisError, OSError) as exc:
            limiting.outage.failed(exc)
            await self.app(scope, receive, send)
            return
        limiting.outage.answered()
        # The outermost layer adds these to the response (one send wrapper for all headers).
        scope[RESPONSE_HEADERS_KEY] = _headers(limits[0], max(0, limits[0].per_minute - counts[0]), reset)  # type: ignore[literal-required]
        await self.app(scope, receive, send)

    async def _hit(self, limit: Limit, address: str, window: int, reset: int) -> int:
        count = await self.limiting.counter.hit(f"{self.limiting.prefix}{limit.name}:{address}:{window}")
        if count > limit.per_minute:
            raise TooManyRequests(
                limit.detail,
                retry_after=reset,
                headers={name.decode(): value.decode() for name, value in _headers(limit, 0, reset)},
            )
        return count


def _headers(limit: Limit, remaining: int, reset: int) -> list[tuple[bytes, bytes]]:
    """The IETF draft's RateLimit-* fields for `limit`, as ASGI header pairs."""
    return [
        (b"ratelimit-limit", limit.limit_value),
        (b"ratelimit-remaining", str(remaining).encode()),
        (b"ratelimit-reset", str(reset).encode()),
        (b"ratelimit-policy", limit.policy),
    ]


class RateLimiting:
    """The two limits, the counter they share, and the lifespan that looks after it."""

    def __init__(self, settings: Settings) -> None:
        self.general = Limit(
            "rate_limit", settings.rate_limit_per_minute, "too many requests from this address"
        )
        self.sign_in = Limit(
            "sign_in_rate_limit",
            settings.auth_rate_limit_per_minute,
            "too many sign-in attempts from this address",
        )
        self.outage = StoreOutage()
        self.redis: Redis | None = None
        self.counter: Counter
        self.prefix = ""
        self._memory: MemoryCounter | None = None
        if settings.redis_url:
            self.redis = Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self.prefix = f"{settings.redis_key_prefix}:"
            self.counter = RedisCounter(self.redis)
        else:
            self._memory = MemoryCounter()
            self.counter = self._memory

    @property
    def middleware(self) -> list[DefineMiddleware]:
        return [DefineMiddleware(RateLimitMiddleware, limiting=self)]

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        sweeper = None if self._memory is None else asyncio.create_task(self._sweep(self._memory))
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            if self.redis is not None:
                await self.redis.aclose()

    @staticmethod
    async def _sweep(memory: MemoryCounter) -> None:
        while True:
            await asyncio.sleep(WINDOW_SECONDS)
            memory.sweep(int(time.time() // WINDOW_SECONDS))
