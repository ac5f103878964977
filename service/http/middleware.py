"""The outermost ASGI layer: request id, client address, security headers, metrics and the
access log.

It wraps Litestar's whole handler (router, CORS and exception handling), so unknown routes,
405s and CORS preflights get the same headers, log line and metrics as routed requests. One
layer with one `send` wrapper does all of it: each layer and wrapper costs a few microseconds
on every request (measured with bench/inproc.py). Layers further in that need a response
header hand it over in the scope (RESPONSE_HEADERS_KEY) rather than wrapping `send` again.
"""

from __future__ import annotations

import os
import re
import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.http.client_ip import ClientAddressResolver
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


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            if _VALID_REQUEST_ID.match(value):
                return value.decode("ascii")
            break
    return os.urandom(16).hex()  # as unique as a uuid4's 122 random bits, without building one


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        production: bool,
        client_addresses: ClientAddressResolver,
        metrics: RequestMetrics | None,
    ) -> None:
        self.app = app
        self.client_addresses = client_addresses
        self.metrics = metrics
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
        request_id = _request_id(scope)
        scope["request_id"] = request_id  # type: ignore[typeddict-unknown-key]
        # The one place the client address is decided: rate limits, audit rows and logs all read it.
        client_ip = self.client_addresses.resolve(scope)
        scope["client_ip"] = client_ip  # type: ignore[typeddict-unknown-key]
        path: str = scope["path"]
        extra_headers = [
            (b"x-request-id", request_id.encode("ascii")),
            *(self.docs_headers if path.startswith(_DOCS_PREFIXES) else self.api_headers),
        ]
        api = path.startswith(_API_PREFIX)
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    *message.get("headers", ()),
                    *extra_headers,
                    *scope.get(RESPONSE_HEADERS_KEY, ()),  # type: ignore[misc]
                ]
                # Header names arrive lowercased (Litestar encodes them so; so do our layers).
                if api and not any(name == b"cache-control" for name, _ in headers):
                    headers.append(_API_CACHE_CONTROL)
                message["headers"] = headers
            await send(message)

        context = request_context.set(scope)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            request_context.reset(context)
            finished = time.perf_counter()
            if self.metrics is not None:
                self.metrics.observe(scope, status, started, finished)
            if access_log.enabled():
                access_log.write(
                    request_id,
                    scope["method"],  # type: ignore[typeddict-item]
                    path,
                    status,
                    round((finished - started) * 1000, 2),
                    client_ip,
                    scope.get("trace_id"),  # type: ignore[call-overload, arg-type]
                )
