"""The outermost ASGI layer: request id, client address, security headers, metrics and the
access log; and, in the same pass, gzip, read-your-writes and the counting of unrouted answers.

It wraps Litestar's whole handler (router, CORS and exception handling), so unknown routes,
405s and CORS preflights get the same headers, log line and metrics as routed requests. One
layer with one `send` wrapper does all of it: each layer and wrapper costs a few microseconds
on every request (measured with bench/inproc.py), and four of ours (this one, compression,
read-your-writes, the unrouted counter) were 5-6 % of a task list's samples (py-spy,
bench/cpu_per_request.py). So the others are hooks this layer calls, decided by one pass over
the request's headers: `Compression` (service.http.compression) for clients that take gzip,
`hold` before the response of an authenticated unsafe request (service.security.caller_listener),
`unrouted` for the router's 404s and 405s (service.security.rate_limit). Layers further in that
need a response header hand it over in the scope (RESPONSE_HEADERS_KEY) rather than wrapping
`send` again.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from service.http.client_ip import ClientAddressResolver
from service.http.compression import Compression
from service.observability.logs import access_log, request_context
from service.observability.metrics import RequestMetrics

# Headers an inner layer wants on the response (the rate limiter's), as a list of byte pairs.
RESPONSE_HEADERS_KEY = "response_headers"

_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_API_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
# The documentation pages run their own scripts and styles, all served from this origin.
_DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'"
)
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
# Every /api answer is about one caller: no shared cache may keep it, and a browser revalidates
# it (with the ETag, where there is one) before reusing it. A route that says otherwise (the
# token routes' `no-store`) keeps its own.
_API_CACHE_CONTROL = (b"cache-control", b"private, no-cache")
_API_PREFIX = "/api/"
_DOCS_PREFIXES = ("/docs", "/redoc", "/static/")


# Methods that change nothing: read-your-writes does not hold their answers.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The answers Litestar's router gives before any middleware of the app runs.
_UNROUTED_STATUSES = frozenset({404, 405})


class UnroutedRefusal(Protocol):
    async def __call__(self, scope: Scope, start: Message) -> tuple[Message, Message] | None:
        """The start and body to send instead of this 404 or 405, or None to send it."""


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        production: bool,
        client_addresses: ClientAddressResolver,
        metrics: RequestMetrics | None,
        compression: Compression | None = None,
        hold: Callable[[], Awaitable[None]] | None = None,
        unrouted: UnroutedRefusal | None = None,
    ) -> None:
        """`hold`: awaited before the answer to an unsafe request with credentials starts
        (read-your-writes); `unrouted`: asked about every 404 and 405 (the rate limit's count)."""
        self.app = app
        self.client_addresses = client_addresses
        self.metrics = metrics
        self.compression = compression
        self.hold = hold
        self.unrouted = unrouted
        # Fixed per path kind, so built once; each response only adds its request id.
        hsts = [_HSTS] if production else []
        self.api_headers = [*_API_HEADERS, *hsts]
        self.docs_headers = [
            *(h for h in _API_HEADERS if h[0] != b"content-security-policy"),
            (b"content-security-policy", _DOCS_CSP),
            *hsts,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # One pass over the request's headers for everything this layer and its hooks read.
        given_id: bytes | None = None
        accept_encoding: bytes | None = None
        authorized = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if given_id is None:
                    given_id = value
            elif name == b"accept-encoding":
                if accept_encoding is None:
                    accept_encoding = value
            elif name == b"authorization":
                authorized = True
        if given_id is not None and _VALID_REQUEST_ID.match(given_id):
            request_id = given_id.decode("ascii")
        else:
            request_id = os.urandom(16).hex()  # as unique as a uuid4's 122 random bits, without building one
            given_id = request_id.encode("ascii")
        scope["request_id"] = request_id  # type: ignore[typeddict-unknown-key]
        # The one place the client address is decided: rate limits, audit rows and logs all read it.
        client_ip = self.client_addresses.resolve(scope)
        scope["client_ip"] = client_ip  # type: ignore[typeddict-unknown-key]
        path: str = scope["path"]
        method: str = scope["method"]  # type: ignore[typeddict-item]
        compression = self.compression
        exchange = _Exchange(
            send
            if compression is None or not compression.applies(path, accept_encoding)
            else compression.sender(send),
            scope,
            given_id,
            self.docs_headers if path.startswith(_DOCS_PREFIXES) else self.api_headers,
            path.startswith(_API_PREFIX),
            self.hold if authorized and method not in _SAFE_METHODS else None,
            self.unrouted,
        )
        context = request_context.set(scope)
        try:
            await self.app(scope, receive, exchange.send)
        finally:
            request_context.reset(context)
            finished = time.perf_counter()
            status = exchange.status
            if self.metrics is not None:
                self.metrics.observe(scope, status, started, finished)
            if access_log.enabled():
                access_log.write(
                    request_id,
                    method,
                    path,
                    status,
                    round((finished - started) * 1000, 2),
                    client_ip,
                    scope.get("trace_id"),  # type: ignore[call-overload, arg-type]
                )


class _Exchange:
    """One request's `send`: a class with slots rather than a closure over the layer's locals."""

    __slots__ = (
        "api",
        "extra_headers",
        "hold",
        "out",
        "replaced",
        "request_id",
        "scope",
        "status",
        "unrouted",
    )

    def __init__(
        self,
        out: Send,
        scope: Scope,
        request_id: bytes,
        extra_headers: list[tuple[bytes, bytes]],
        api: bool,
        hold: Callable[[], Awaitable[None]] | None,
        unrouted: UnroutedRefusal | None,
    ) -> None:
        self.out = out
        self.scope = scope
        self.request_id = request_id
        self.extra_headers = extra_headers
        self.api = api
        self.hold = hold
        self.unrouted = unrouted
        self.status = 500
        self.replaced = False

    async def send(self, message: Message) -> None:
        if message["type"] != "http.response.start":
            if not self.replaced:  # else the rest of the answer a 429 replaced
                await self.out(message)
            return
        start = cast("HTTPResponseStartEvent", message)
        replacement = None
        if start["status"] in _UNROUTED_STATUSES and self.unrouted is not None:
            replacement = await self.unrouted(self.scope, start)
            if replacement is not None:
                start = cast("HTTPResponseStartEvent", replacement[0])
                self.replaced = True
        if self.hold is not None:
            await self.hold()
        self.status = start["status"]
        headers = list(start.get("headers", ()))
        # Header names arrive lowercased (Litestar encodes them so; so do our layers); none of
        # ours is a cache-control, so only the answer's own headers are looked at.
        cached = False
        if self.api:
            for name, _ in headers:
                if name == b"cache-control":
                    cached = True
                    break
        headers.append((b"x-request-id", self.request_id))
        headers += self.extra_headers
        more: list[tuple[bytes, bytes]] | None = self.scope.get(RESPONSE_HEADERS_KEY)  # type: ignore[call-overload, assignment]
        if more:
            headers += more
        if self.api and not cached:
            headers.append(_API_CACHE_CONTROL)
        start["headers"] = headers
        await self.out(start)
        if replacement is not None:
            await self.out(replacement[1])
