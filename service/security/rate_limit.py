"""Rate limits per client address: fixed one-minute windows counted in memory or in Redis.

Two limits: RATE_LIMIT_PER_MINUTE on every API request, and AUTH_RATE_LIMIT_PER_MINUTE on top
of it for the routes that take a password or a refresh token. The client address is the one
the request-context layer computed (TRUSTED_PROXIES decides whether X-Forwarded-For counts);
an IPv6 client is counted by its /64, the smallest block an ISP hands a customer, since each
of its 2^64 addresses would otherwise have a budget of its own.

404s and 405s count too (a scanner probing paths spends its budget): Litestar's router answers
them before any of the app's middleware runs, so the outermost layer has `UnroutedCounting`
count them. Failed /metrics authentications have a limit of their own (`metrics_auth`):
AUTH_RATE_LIMIT_PER_MINUTE per address, counted before the token is checked.

Why not Litestar's RateLimitMiddleware: it keeps a sliding history of every request's timestamp
per client, JSON-encoded in the store and read then rewritten under a per-process lock. That is
O(limit) work per request, serialises all requests of a worker, and is not atomic across hosts
sharing Redis (two hosts can read the same history and both write it back). A counter per
client and window is one atomic `INCR` in Redis (one round trip) or one dict update in memory.

If Redis cannot be reached, or has not answered within REDIS_DEADLINE_SECONDS, the limiter lets
requests through and logs one warning: an outage of the limiter's store must not become an
outage of the API. What the limit guards most, password guessing, is also bounded per account by
the login attempt counter in PostgreSQL, which does not depend on Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol, cast

import msgspec
from litestar import Litestar
from litestar.middleware.base import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.http.errors import PROBLEM_JSON, Problem, TooManyRequests
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
        # Mail-sending and one-time-token routes (service/accounts/verification.py, recovery.py).
        ("POST", "forgot-password"),
        ("POST", "reset-password"),
        ("POST", "verify-email"),
        ("POST", "verify-email/resend"),
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
# The limiter's clock, seconds since the epoch: time.time unless the app's state holds another under
# this key when its lifespan starts (tests move a clock of their own instead of waiting for the
# next window).
CLOCK_KEY = "rate_limit_clock"
Clock = Callable[[], float]
# The whole of a request's counting, whatever redis-py's own retries would add to each socket
# operation's REDIS_TIMEOUT_SECONDS.
REDIS_DEADLINE_SECONDS = 1.0
# INCR and, for a new window's key, its expiry: atomic, one round trip.
_REDIS_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
# Gives back one count of a key that still exists (a secret that was right): never below zero.
_REDIS_REFUND = """
if redis.call('EXISTS', KEYS[1]) == 1 and tonumber(redis.call('GET', KEYS[1])) > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""
# The app state's key for the RateLimiting object (the /metrics handler counts failures with it).
STATE_KEY = "rate_limiting"
# Set in the scope once RateLimitMiddleware has counted a request, so UnroutedCounting does not.
_COUNTED = "rate_limit_counted"
# The 429 a request was refused with, for a second `admit` of the same request to raise again.
_REFUSED = "rate_limit_refused"
_encoder = msgspec.json.Encoder()


def client_key(address: str) -> str:
    """The budget an address spends: an IPv4 address is its own, an IPv6 address its /64's."""
    return address if ":" not in address else _ipv6_key(address)


@functools.lru_cache(maxsize=4096)
def _ipv6_key(address: str) -> str:
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:  # a dual-stack socket's IPv4 peer
        return str(ip.ipv4_mapped)
    return f"{ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)).network_address}/64"


class Counter(Protocol):
    async def hit(self, key: str) -> int:
        """Count one request under `key` (which names its window) and return the window's total."""

    async def refund(self, key: str) -> None:
        """Take back one count of `key`, if its window is still counted."""


class MemoryCounter:
    """Counts for one worker. Keys of past windows are swept once a minute."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def hit(self, key: str) -> int:
        return self.increment(key)

    def increment(self, key: str) -> int:
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        return count

    async def refund(self, key: str) -> None:
        if self.counts.get(key, 0) > 0:
            self.counts[key] -= 1

    def sweep(self, current_window: int) -> None:
        suffix = f":{current_window}"
        for key in [key for key in self.counts if not key.endswith(suffix)]:
            del self.counts[key]


class RedisCounter:
    """Counts shared by every worker and host using the same Redis and key prefix."""

    def __init__(self, redis: Redis) -> None:
        self.script = redis.register_script(_REDIS_HIT)
        self.refund_script = redis.register_script(_REDIS_REFUND)

    async def hit(self, key: str) -> int:
        return int(await self.script(keys=[key], args=[WINDOW_SECONDS + 1]))

    async def refund(self, key: str) -> None:
        await self.refund_script(keys=[key])


class StoreOutage:
    """Fail open while the store is unreachable, without waiting on it for every request."""

    def __init__(self) -> None:
        self.retry_at = 0.0
        self.down = False

    def skipping(self) -> bool:
        # No clock read while the store has never failed (every request asks).
        return self.retry_at != 0.0 and time.monotonic() < self.retry_at

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
        if scope["type"] == "http":
            await self.limiting.admit(scope)
        await self.app(scope, receive, send)


def _too_many(limit: Limit, reset: int) -> TooManyRequests:
    return TooManyRequests(
        limit.detail,
        retry_after=reset,
        headers={name.decode(): value.decode() for name, value in _headers(limit, 0, reset)},
    )


class UnroutedCounting:
    """Counts, under the general limit, the 404s and 405s Litestar's router answers before any
    middleware of the app runs; past the limit the answer is the same 429 as RateLimitMiddleware's.

    The outermost layer (service.http.middleware.RequestContextMiddleware) calls `refusal` with
    the start of every 404 or 405 it sends, so a routed request costs nothing here: no layer and
    no `send` wrapper of its own (a layer of its own with its wrapper was 2.6-5.3 us per request
    around a no-op ASGI app). The router's 404s cannot be counted from inside Litestar: no
    middleware of the app runs for them, and exception handlers cannot await the counter (Redis).
    """

    def __init__(self, limiting: RateLimiting) -> None:
        self.limiting = limiting

    async def refusal(self, scope: Scope, start: Message) -> tuple[Message, Message] | None:
        """The 429's start and body to send instead of this unrouted answer, or None to send it."""
        if _COUNTED in scope or scope["path"].startswith(EXEMPT_PREFIXES):
            return None
        refusal = await self._count(scope)
        return None if refusal is None else _refusal_messages(scope, start, refusal)

    async def _count(self, scope: Scope) -> TooManyRequests | None:
        limiting = self.limiting
        if limiting.outage.skipping():
            return None
        address = client_key(scope.get("client_ip") or "unknown")  # type: ignore[typeddict-item,arg-type]
        now = limiting.clock()
        window = int(now // WINDOW_SECONDS)
        reset = (window + 1) * WINDOW_SECONDS - int(now)
        limit = limiting.general
        try:
            count = await limiting.counter.hit(limiting.key(limit, address, window))
        except (RedisError, OSError) as exc:
            limiting.outage.failed(exc)
            return None
        limiting.outage.answered()
        scope[RESPONSE_HEADERS_KEY] = _headers(limit, max(0, limit.per_minute - count), reset)  # type: ignore[literal-required]
        return _too_many(limit, reset) if count > limit.per_minute else None


def _refusal_messages(scope: Scope, start: Message, refusal: TooManyRequests) -> tuple[Message, Message]:
    """The 429 problem+json in place of the router's answer, keeping its other headers (CORS)."""
    request_id = scope.get("request_id")  # type: ignore[call-overload]
    body = _encoder.encode(
        Problem(
            status=429,
            title="Too Many Requests",
            detail=refusal.detail,
            instance=scope["path"],
            request_id=request_id if isinstance(request_id, str) else None,
        )
    )
    headers = cast("list[tuple[bytes, bytes]]", start.get("headers", []))
    kept = [
        (name, value) for name, value in headers if name.lower() not in (b"content-type", b"content-length")
    ]
    return (
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                *kept,
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", (refusal.headers or {})["Retry-After"].encode()),
            ],
        },
        {"type": "http.response.body", "body": body, "more_body": False},
    )


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
        self.metrics_auth = Limit(
            "metrics_auth",
            settings.auth_rate_limit_per_minute,
            "too many failed /metrics authentications from this address",
        )
        self.general_limits = (self.general,)
        self.sign_in_limits = (self.sign_in, self.general)
        self._redis_url = settings.redis_url
        self.prefix = f"{settings.redis_key_prefix}:" if settings.redis_url else ""
        self.reset()

    def reset(self) -> None:
        """Forget every count, the store's outage and the clock: the state construction gives.
        Only between runs of the lifespan (which closes the Redis client): the tests' app cache
        (tests/conftest.py) reuses one app across tests and resets it before each."""
        self.outage = StoreOutage()
        self.redis: Redis | None = None
        self.counter: Counter
        self.memory: MemoryCounter | None = None
        self.clock: Clock = time.time
        if self._redis_url:
            self.redis = Redis.from_url(
                self._redis_url,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self.counter = RedisCounter(self.redis)
        else:
            self.memory = MemoryCounter()
            self.counter = self.memory

    @property
    def middleware(self) -> list[DefineMiddleware]:
        return [DefineMiddleware(RateLimitMiddleware, limiting=self)]

    @property
    def unrouted(self) -> UnroutedCounting:
        """What counts the router's 404s and 405s (for the outermost layer): see UnroutedCounting."""
        return UnroutedCounting(self)

    def key(self, limit: Limit, address: str, window: int) -> str:
        return f"{self.prefix}{limit.name}:{address}:{window}"

    async def admit(self, scope: Scope) -> None:
        """Count this request (once: a second call for the same request, after the task list's
        fast path counted it and handed it to the router, repeats the first's outcome) and
        raise the 429 past a limit; put the RateLimit-* headers in the scope."""
        if _COUNTED in scope:
            return
        refused: TooManyRequests | None = scope.get(_REFUSED)  # type: ignore[call-overload,assignment]
        if refused is not None:
            raise refused
        if scope["path"].startswith(EXEMPT_PREFIXES) or self.outage.skipping():
            return
        address = client_key(scope.get("client_ip") or "unknown")  # type: ignore[typeddict-item,arg-type]
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        reset = (window + 1) * WINDOW_SECONDS - int(now)
        # Sign-in routes count against their own limit first, then the general one; the response
        # headers describe the first.
        sign_in = (scope["method"], scope.get("path_template")) in SIGN_IN_ROUTES  # type: ignore[typeddict-item]
        limits = self.sign_in_limits if sign_in else self.general_limits
        memory = self.memory
        if memory is not None:
            # In memory a count is one dict update: no deadline and no awaits. asyncio.timeout and
            # the awaited hits were 3.2 % of a task list's samples (py-spy, bench/cpu_per_request.py).
            first = 0
            for limit in limits:
                count = memory.increment(self.key(limit, address, window))
                if count > limit.per_minute:
                    scope[_REFUSED] = refusal = _too_many(limit, reset)  # type: ignore[literal-required]
                    raise refusal
                first = first or count
        else:
            try:
                async with asyncio.timeout(REDIS_DEADLINE_SECONDS):
                    counts = [await self._hit(scope, limit, address, window, reset) for limit in limits]
            except (RedisError, OSError, TimeoutError) as exc:
                self.outage.failed(exc)
                return
            self.outage.answered()
            first = counts[0]
        scope[_COUNTED] = True  # type: ignore[literal-required]
        # The outermost layer adds these to the response (one send wrapper for all headers).
        scope[RESPONSE_HEADERS_KEY] = _headers(limits[0], max(0, limits[0].per_minute - first), reset)  # type: ignore[literal-required]

    async def _hit(self, scope: Scope, limit: Limit, address: str, window: int, reset: int) -> int:
        count = await self.counter.hit(self.key(limit, address, window))
        if count > limit.per_minute:
            scope[_REFUSED] = refusal = _too_many(limit, reset)  # type: ignore[literal-required]
            raise refusal
        return count

    async def spend_attempt(self, limit: Limit, scope: Scope) -> str | None:
        """Count one attempt at a secret before it is checked, atomically, so a burst gets no
        more checks than the limit; past it, 429 whatever the secret. Returns the key to
        `refund` when the secret was right (None while the store is unreachable: fail open)."""
        if self.outage.skipping():
            return None
        address = client_key(scope.get("client_ip") or "unknown")  # type: ignore[typeddict-item,arg-type]
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        key = self.key(limit, address, window)
        try:
            count = await self.counter.hit(key)
        except (RedisError, OSError) as exc:
            self.outage.failed(exc)
            return None
        self.outage.answered()
        if count > limit.per_minute:
            raise _too_many(limit, (window + 1) * WINDOW_SECONDS - int(now))
        return key

    async def refund(self, key: str | None) -> None:
        """Give back the attempt a right secret spent: only failures use up the budget."""
        if key is None:
            return
        try:
            await self.counter.refund(key)
        except (RedisError, OSError) as exc:
            self.outage.failed(exc)

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        app.state[STATE_KEY] = self
        self.clock = app.state.get(CLOCK_KEY, time.time)
        sweeper = None if self.memory is None else asyncio.create_task(self._sweep(self.memory))
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            if self.redis is not None:
                await self.redis.aclose()

    async def _sweep(self, memory: MemoryCounter) -> None:
        while True:
            await asyncio.sleep(WINDOW_SECONDS)
            memory.sweep(int(self.clock() // WINDOW_SECONDS))
