"""Litestar internals (checked with Litestar 2.25; pyproject.toml keeps it below 3).

- `StructSchemaPlugin` and `SchemaCreator` (`litestar._openapi`): the msgspec Struct schema
  plugin, extended rather than re-implemented, because Litestar documents a Struct with
  `forbid_unknown_fields=True` as an open object (no upstream issue found; litestar#3690 added
  `forbid_unknown_fields` for DTOs only). service/http/openapi.py: ClosedStructSchemaPlugin.
- `HTTPRouteHandler._fn`: the function a handler calls. Litestar 2 answers OPTIONS with the
  methods of whichever handler of a path it registered first (litestar-org/litestar#4169,
  fixed only in 3.0); service/app.py gives each generated OPTIONS handler its path's methods.
- `HTTPRouteHandler.before_request` and its memo `_resolved_before_request`: a generated OPTIONS
  handler is owned by the first handler's controller, so it inherits the controller's
  `before_request=access(...)` and a plain OPTIONS answered 401 without a token.
  `without_before_request` takes the hook off such a handler (service/app.py).
- `ScopeState.from_scope(scope).form`: the parsed form Litestar caches on the scope, which the
  handler's `data` is built from. The scan upload parses its body itself, as it arrives and
  within its own bounds (service/http/forms.py: read_bounded_form; Litestar's parser holds the
  whole body and splits it on the event loop), and puts the result there, so `data` is built from
  it without reading the body again; a browser's empty file input (an empty text field,
  litestar-org/litestar#4647) is removed from it first.
- `CORSMiddleware` (`litestar.middleware._internal.cors`) and its `app`: `Litestar.asgi_handler`
  is Litestar's CORS layer around the exception layer around the router. The CORS layer does
  nothing for a request without an Origin header but costs, on every request, its bypass check
  and a Headers object built from the scope: 1.7 % of a task list's samples (py-spy,
  bench/cpu_per_request.py). `cors_only_with_origin` sends only requests with an Origin through it,
  and can put a layer of ours (the task list's fast path) between it and the exception layer.
- `ASGIRouter.handle_routing`, `normalize_path` and `is_valid_host` (`litestar._asgi`): how the
  router picks a route for a request. `routed` asks the router's own (cached) decision, so the task
  list's fast path (service/tasks/fast_list.py) answers exactly the requests Litestar would
  route to that handler, with the path and path parameters Litestar would give it.

tests/compat/test_litestar.py fails when any of these moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Litestar
from litestar._asgi.utils import is_valid_host
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.middleware._internal.cors import CORSMiddleware
from litestar.types import ASGIApp, Receive, RouteHandlerType, Scope, Send
from litestar.utils.path import normalize_path
from litestar.utils.scope.state import ScopeState

__all__ = [
    "SchemaCreator",
    "StructSchemaPlugin",
    "cache_form",
    "cached_form",
    "cors_only_with_origin",
    "replace_handler_function",
    "routed",
    "without_before_request",
]


def replace_handler_function(handler: HTTPRouteHandler, function: Callable[..., Any]) -> None:
    """Make a registered handler call `function` instead of the one it was built with."""
    handler._fn = function


def without_before_request(handler: HTTPRouteHandler) -> None:
    """Make a registered handler run no `before_request` hook, not even one of its owners'
    (Litestar resolves the hook from the handler's layers on the first request, and memoises it)."""
    handler.before_request = None
    handler._resolved_before_request = None


def cached_form(scope: Scope) -> Any:
    """The form Litestar parsed for this request and will build the handler's `data` from (a
    dict of field lists), or an unset marker before it is parsed."""
    return ScopeState.from_scope(scope).form


def cache_form(scope: Scope, form: dict[str, Any]) -> None:
    """Have Litestar build the handler's `data` from `form` instead of parsing the body."""
    ScopeState.from_scope(scope).form = form  # type: ignore[assignment]


class _OriginGate:
    """Requests with an Origin header go through Litestar's CORS layer, the others straight to
    what it wraps (where the CORS layer would have sent them: it only acts on an Origin)."""

    __slots__ = ("app", "cors")

    def __init__(self, cors: CORSMiddleware) -> None:
        self.cors = cors
        self.app: ASGIApp = cors.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, _ in scope["headers"]:
            if name == b"origin":
                await self.cors(scope, receive, send)
                return
        await self.app(scope, receive, send)


def cors_only_with_origin(handler: ASGIApp, inner: Callable[[ASGIApp], ASGIApp] | None = None) -> ASGIApp:
    """`handler` (an app's `asgi_handler`) with its CORS layer skipped for requests without an
    Origin header; unchanged when it is not Litestar's CORS layer (no CORS config). `inner`
    wraps what the CORS layer wraps (the exception layer around the router)."""
    if not isinstance(handler, CORSMiddleware):
        return handler if inner is None else inner(handler)
    if inner is not None:
        handler.app = inner(handler.app)
    return _OriginGate(handler)


Routed = tuple[RouteHandlerType, str, dict[str, Any], str]


def routed(app: Litestar, scope: Scope) -> Routed | None:
    """Where `app`'s router sends this HTTP request: (handler, path, path parameters, path
    template), as it would write them into the scope; None when it would answer itself (404,
    405, an invalid Host header) or the scope has a root_path."""
    if scope.get("root_path"):
        return None
    for name, value in scope["headers"]:
        if name == b"host":
            if not valid_host(value):
                return None
            break
    return route_of(app, scope["path"], scope.get("method"))  # type: ignore[arg-type]


def valid_host(host: bytes) -> bool:
    """The router's check of a Host header (it answers 400 to one that fails)."""
    return is_valid_host(host)


def route_of(app: Litestar, path: str, method: str | None) -> Routed | None:
    """`routed` for a path and method alone (no Host header or root_path to check)."""
    try:
        # Called as the router calls it, so both share its routing cache's entries.
        _, handler, routed_path, params, template = app.asgi_router.handle_routing(
            path=normalize_path(path), method=method
        )
    except Exception:  # the router's NotFoundException, MethodNotAllowedException
        return None
    return handler, routed_path, params, template
