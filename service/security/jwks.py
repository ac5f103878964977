"""Public signing keys that identity providers publish as a JWKS, cached per process and per URL.

Keys stay fresh for the provider's Cache-Control max-age (at least five minutes). A token whose
key id the cached set lacks is answered after a fetch that started after the token arrived, so a
key the provider minted and signed with a moment ago (Better Auth's `rotationInterval`) works on
its first request; that request may wait for the fetch. Made-up key ids cannot hammer the
provider: one fetch at a time per URL (every request that arrived before it shares it), at most
one per MIN_FETCH_INTERVAL_SECONDS, and a key id that a fetch did not find is refused without
another fetch for UNKNOWN_KID_SECONDS. After a failed fetch the next waits
FAILED_FETCH_RETRY_SECONDS; meanwhile keys past their freshness stay usable for STALE_GRACE_SECONDS.
A key id the cached set lacks while the latest fetch failed is a 503 (JwksUnavailable), never a
401: the provider may have rotated to it, and we cannot tell until it answers.

Each key set URL (one per provider: Better Auth's, Supabase's) has an httpx client of its own,
with at most MAX_CONNECTIONS connections and FETCH_TIMEOUT_SECONDS per fetch, so a busy AI
service or another provider can never make a provider's keys wait for a connection.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import msgspec
from litestar.datastructures import State

from service.http.tls import client_tls_context

log = logging.getLogger("service.security.jwks")

MIN_TTL_SECONDS = 300
MAX_TTL_SECONDS = 24 * 3600
MIN_FETCH_INTERVAL_SECONDS = 1.0
FAILED_FETCH_RETRY_SECONDS = 30
UNKNOWN_KID_SECONDS = 10
MAX_UNKNOWN_KIDS = 1024
STALE_GRACE_SECONDS = 600
FETCH_TIMEOUT_SECONDS = 5.0
# Fetches of one URL run one at a time (the key set's lock): one connection, and one to spare.
MAX_CONNECTIONS = 2
MAX_JWKS_BYTES = 256 * 1024
# Public key types only: a shared secret ("oct") in a published key set is never trusted.
_PUBLIC_KEY_TYPES = {"EC", "RSA", "OKP"}
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)

STATE_KEY = "jwks"
NO_USABLE_KEY = "no usable signing key in it"


class JwksUnavailable(Exception):
    """The provider's key set cannot be fetched and no usable copy is cached."""

    def __init__(self, url: str, retry_after: int) -> None:
        super().__init__(f"signing keys at {url} are unavailable")
        self.retry_after = retry_after


@dataclass(frozen=True)
class KeySetProblem:
    """Why a key set cannot be used: `misconfigured` for a URL that answers, but not with a JWKS
    (404, an HTML page, no usable key), rather than a provider that is down."""

    reason: str
    misconfigured: bool


class _FetchFailed(Exception):
    def __init__(self, reason: str, *, misconfigured: bool) -> None:
        super().__init__(reason)
        self.problem = KeySetProblem(reason, misconfigured)


class _KeySetDocument(msgspec.Struct):
    keys: list[dict[str, Any]]


_document_decoder = msgspec.json.Decoder(_KeySetDocument)


@dataclass
class _KeySet:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fresh_until: float = -math.inf
    usable_until: float = -math.inf
    last_attempt: float = -math.inf  # when the latest fetch started
    last_failed: bool = False
    # Key ids a fetch that started after their token arrived did not find -> refused until then.
    unknown_kids: dict[str, float] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def is_unknown(self, kid: str, now: float) -> bool:
        return self.unknown_kids.get(kid, -math.inf) > now and now < self.usable_until

    def remember_unknown(self, kid: str, now: float) -> None:
        self.unknown_kids.pop(kid, None)
        # Entries share one lifetime, so the oldest is the first to expire.
        while self.unknown_kids and (
            len(self.unknown_kids) >= MAX_UNKNOWN_KIDS or next(iter(self.unknown_kids.values())) <= now
        ):
            del self.unknown_kids[next(iter(self.unknown_kids))]
        self.unknown_kids[kid] = now + UNKNOWN_KID_SECONDS


class JwksCache:
    """One per app (kept on `app.state`), shared by every request of that app."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_client: Callable[[httpx.AsyncClient], None] | None = None,
    ) -> None:
        """`on_client` sees each provider's client as it is created (tracing instruments it)."""
        self._clock = clock
        self._sleep = sleep
        self._on_client = on_client
        self._sets: dict[str, _KeySet] = {}
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, url: str) -> httpx.AsyncClient:
        """The URL's own client: the providers' fetches never share connections, nor the AI service's."""
        client = self._clients.get(url)
        if client is None:
            client = httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
                ),
                timeout=FETCH_TIMEOUT_SECONDS,
                follow_redirects=False,
                verify=client_tls_context(),
            )
            if self._on_client is not None:
                self._on_client(client)
            self._clients[url] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def signing_key(self, url: str, kid: str) -> jwt.PyJWK | None:
        """The public key `kid` of the set at `url`, or None when the provider does not publish it.

        Raises JwksUnavailable when the set cannot be fetched and no cached copy is usable.
        """
        key_set = self._sets.setdefault(url, _KeySet())
        arrived = self._clock()
        failure = None
        if kid not in key_set.keys:
            if key_set.is_unknown(kid, arrived):
                return None
            failure = await self._refresh(url, key_set, newer_than=arrived, kid=kid)
        elif arrived >= key_set.fresh_until:
            failure = await self._refresh(url, key_set, newer_than=None)
        now = self._clock()
        if failure is not None:
            stale = "serving cached keys" if now < key_set.usable_until else "no usable keys"
            kind = "a wrong URL?" if failure.problem.misconfigured else "provider unreachable"
            log.warning("cannot fetch signing keys from %s (%s; %s): %s", url, failure, kind, stale)
        key = key_set.keys.get(kid)
        if now >= key_set.usable_until or (key is None and key_set.last_failed):
            # Nothing usable; or a key id that only a fetch could tell, and the fetch failed.
            retry_after = key_set.last_attempt + FAILED_FETCH_RETRY_SECONDS - now
            raise JwksUnavailable(url, max(1, math.ceil(retry_after)))
        if key is None and not key_set.last_failed and key_set.last_attempt >= arrived:
            key_set.remember_unknown(kid, now)
        return key

    async def load(self, url: str) -> KeySetProblem | None:
        """Fetch the set at `url` now (at start-up, say) and tell what keeps it from being used."""
        key_set = self._sets.setdefault(url, _KeySet())
        failure = await self._refresh(url, key_set, newer_than=self._clock())
        if failure is not None:
            return failure.problem
        if not key_set.keys and not key_set.last_failed:
            return KeySetProblem(NO_USABLE_KEY, misconfigured=True)
        return None

    async def _refresh(
        self, url: str, key_set: _KeySet, newer_than: float | None, kid: str | None = None
    ) -> _FetchFailed | None:
        """Fetch the set unless that is pointless or too soon: with `newer_than`, a fetch that
        started since then will do, or one that found `kid`; without, a fresh set will.
        The failure, if this call fetched and failed (the caller says so in the log)."""
        async with key_set.lock:
            if newer_than is not None and (key_set.last_attempt >= newer_than or kid in key_set.keys):
                return None
            now = self._clock()
            if newer_than is None and now < key_set.fresh_until:
                return None
            if key_set.last_failed and now - key_set.last_attempt < FAILED_FETCH_RETRY_SECONDS:
                return None
            wait = key_set.last_attempt + MIN_FETCH_INTERVAL_SECONDS - now
            if wait > 0:
                await self._sleep(wait)
            started = self._clock()
            key_set.last_attempt = started
            try:
                keys, ttl = await self._fetch(url)
            except _FetchFailed as failure:
                key_set.last_failed = True
                return failure
            fetched = self._clock()
            key_set.keys = keys
            key_set.last_failed = False
            key_set.fresh_until = fetched + ttl
            key_set.usable_until = key_set.fresh_until + STALE_GRACE_SECONDS
            return None

    async def _fetch(self, url: str) -> tuple[dict[str, jwt.PyJWK], float]:
        try:
            # A total deadline: httpx's timeout bounds each read, so a trickling server could stall longer.
            async with (
                asyncio.timeout(FETCH_TIMEOUT_SECONDS),
                self._client(url).stream(
                    "GET", url, headers={"Accept": "application/json"}, timeout=FETCH_TIMEOUT_SECONDS
                ) as response,
            ):
                if response.status_code != 200:
                    # 404 and the like mean nothing is published there; 5xx and 429, a provider in trouble.
                    status = response.status_code
                    misconfigured = 400 <= status < 500 and status != 429
                    raise _FetchFailed(f"status {status}", misconfigured=misconfigured)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_JWKS_BYTES:
                        raise _FetchFailed(f"larger than {MAX_JWKS_BYTES} bytes", misconfigured=True)
                cache_control = response.headers.get("cache-control", "")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise _FetchFailed(f"not a URL: {exc}", misconfigured=True) from None
        except (httpx.HTTPError, TimeoutError) as exc:
            raise _FetchFailed(f"{type(exc).__name__}: {exc}", misconfigured=False) from None
        try:
            document = _document_decoder.decode(bytes(body))
        except msgspec.MsgspecError as exc:
            raise _FetchFailed(f"not a JWKS document: {exc}", misconfigured=True) from None
        return _public_keys(document.keys), _time_to_live(cache_control)


def _public_keys(entries: list[dict[str, Any]]) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        kid = entry.get("kid")
        if (
            not isinstance(kid, str)
            or entry.get("kty") not in _PUBLIC_KEY_TYPES
            or entry.get("use", "sig") != "sig"
            or "d" in entry
        ):
            continue
        try:
            keys[kid] = jwt.PyJWK(entry)
        except (jwt.PyJWTError, NotImplementedError, ValueError, TypeError, KeyError):
            log.warning("ignoring an unusable key %r in a JWKS", kid)
    return keys


def _time_to_live(cache_control: str) -> float:
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return MIN_TTL_SECONDS
    return min(MAX_TTL_SECONDS, max(MIN_TTL_SECONDS, int(match.group(1))))


def jwks_cache(state: State) -> JwksCache:
    """The app's cache (its lifespan creates it; an app without one gets one on first use)."""
    cache = state.get(STATE_KEY)
    if not isinstance(cache, JwksCache):
        cache = JwksCache()
        state[STATE_KEY] = cache
    return cache
