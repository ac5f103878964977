"""Public signing keys that identity providers publish as a JWKS, cached per process and per URL.

Keys stay fresh for the provider's Cache-Control max-age (at least five minutes). A token with a
key id the cached set does not hold triggers one refetch, but no URL is fetched more than once per
REFETCH_INTERVAL_SECONDS, so a flood of made-up key ids cannot hammer the provider. When the
provider is down, keys past their freshness stay usable for STALE_GRACE_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import msgspec
from litestar.datastructures import State

log = logging.getLogger("service.security.jwks")

MIN_TTL_SECONDS = 300
MAX_TTL_SECONDS = 24 * 3600
REFETCH_INTERVAL_SECONDS = 30
STALE_GRACE_SECONDS = 600
FETCH_TIMEOUT_SECONDS = 5.0
MAX_JWKS_BYTES = 256 * 1024
# Public key types only: a shared secret ("oct") in a published key set is never trusted.
_PUBLIC_KEY_TYPES = {"EC", "RSA", "OKP"}
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)

STATE_KEY = "jwks"


class JwksUnavailable(Exception):
    """The provider's key set cannot be fetched and no usable copy is cached."""

    def __init__(self, url: str, retry_after: int) -> None:
        super().__init__(f"signing keys at {url} are unavailable")
        self.retry_after = retry_after


class _FetchFailed(Exception):
    pass


class _KeySetDocument(msgspec.Struct):
    keys: list[dict[str, Any]]


_document_decoder = msgspec.json.Decoder(_KeySetDocument)


@dataclass
class _KeySet:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fresh_until: float = -math.inf
    usable_until: float = -math.inf
    last_attempt: float = -math.inf
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class JwksCache:
    """One per app (kept on `app.state`), shared by every request of that app."""

    def __init__(self, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic) -> None:
        self._http = http
        self._clock = clock
        self._sets: dict[str, _KeySet] = {}

    async def signing_key(self, url: str, kid: str) -> jwt.PyJWK | None:
        """The public key `kid` of the set at `url`, or None when the provider does not publish it.

        Raises JwksUnavailable when the set cannot be fetched and no cached copy is usable.
        """
        key_set = self._sets.setdefault(url, _KeySet())
        if self._clock() >= key_set.fresh_until or kid not in key_set.keys:
            await self._refresh(url, key_set)
        now = self._clock()
        if now >= key_set.usable_until:
            retry_after = key_set.last_attempt + REFETCH_INTERVAL_SECONDS - now
            raise JwksUnavailable(url, max(1, math.ceil(retry_after)))
        return key_set.keys.get(kid)

    async def _refresh(self, url: str, key_set: _KeySet) -> None:
        # Requests that arrive during a fetch wait for it, then find the attempt too recent to repeat.
        async with key_set.lock:
            started = self._clock()
            if started - key_set.last_attempt < REFETCH_INTERVAL_SECONDS:
                return
            key_set.last_attempt = started
            try:
                keys, ttl = await self._fetch(url)
            except _FetchFailed as exc:
                stale = "serving cached keys" if started < key_set.usable_until else "no usable keys"
                log.warning("cannot fetch signing keys from %s (%s): %s", url, exc, stale)
                return
            fetched = self._clock()
            key_set.keys = keys
            key_set.fresh_until = fetched + ttl
            key_set.usable_until = key_set.fresh_until + STALE_GRACE_SECONDS

    async def _fetch(self, url: str) -> tuple[dict[str, jwt.PyJWK], float]:
        try:
            # A total deadline: httpx's timeout bounds each read, so a trickling server could stall longer.
            async with (
                asyncio.timeout(FETCH_TIMEOUT_SECONDS),
                self._http.stream(
                    "GET", url, headers={"Accept": "application/json"}, timeout=FETCH_TIMEOUT_SECONDS
                ) as response,
            ):
                if response.status_code != 200:
                    raise _FetchFailed(f"status {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_JWKS_BYTES:
                        raise _FetchFailed(f"key set larger than {MAX_JWKS_BYTES} bytes")
                cache_control = response.headers.get("cache-control", "")
        except (httpx.HTTPError, TimeoutError) as exc:
            raise _FetchFailed(f"{type(exc).__name__}: {exc}") from None
        try:
            document = _document_decoder.decode(bytes(body))
        except msgspec.MsgspecError as exc:
            raise _FetchFailed(f"not a JWKS document: {exc}") from None
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
    """The app's cache, created on first use with the app's shared HTTP client."""
    cache = state.get(STATE_KEY)
    if not isinstance(cache, JwksCache):
        cache = JwksCache(state.http)
        state[STATE_KEY] = cache
    return cache
