"""The task list's fast path: `GET /api/{user_id}/tasks` answered below Litestar's router.

The task list is the hottest route, and Litestar's own handling of a request (the Request
object, the parameters' signature model, the route's exception layer) costs more CPU than all of
the route's work (bench/README.md: the Litestar floor is 1.6x the bare ASGI floor). So this layer,
between Litestar's CORS layer and its exception layer (inside our request-context, tracing and
CORS layers: request id, headers, access log, metrics, compression all apply as before), answers
the requests it fully understands itself, with the route's own pieces: the router's routing
decision (`routed`), the rate limit's count (`RateLimiting.admit`), `authenticate` and the
route's `user_id` rule, `queries.list_tasks`, and the route's answer (`routes.list_answer`: body,
ETag, 304, X-Total-Count, Link).

Everything else goes to the router untouched, and is answered there as before: another route or
method (HEAD and OPTIONS included), a query string other than `completed=true|false`,
`limit=1..200` and `offset=0..100000` written plainly, each at most once (so every 400 is
Litestar's), another user's id (403). A step that fails is not answered here either: the request
goes to the router with the step's outcome kept on the scope, and the route raises that same
exception where it would have met it (the 429 from `admit`, a 401 or a database outage from
`authenticate_remembered`, a failed query through FAST_PATH_FAILURE_KEY), so the exception
handlers answer it as they answer the route's own. The OpenAPI document is the route's.
tests/tasks/test_fast_list.py sends the same requests to an app with and without this layer and
compares the answers byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from service.compat.litestar import routed
from service.security.auth import authenticate_remembered
from service.security.rate_limit import STATE_KEY as RATE_LIMITING_KEY
from service.security.rate_limit import RateLimiting
from service.tasks import queries
from service.tasks.routes import (
    DEFAULT_LIMIT,
    FAST_PATH_FAILURE_KEY,
    LIST_OPERATION_ID,
    MAX_LIMIT,
    MAX_OFFSET,
    list_answer,
)

# The app state's key for the fast path itself (tests read how many requests it answered).
STATE_KEY = "task_list_fast_path"


def _number(value: bytes, maximum: int) -> int | None:
    """A decimal written plainly (no sign, no leading zero, no escapes) up to `maximum`."""
    if not value.isdigit() or (len(value) > 1 and value[0] == 0x30) or len(value) > 6:
        return None
    number = int(value)
    return number if number <= maximum else None


def parse_query(query: bytes) -> tuple[bool | None, int, int] | None:
    """(completed, limit, offset) of a query string this path answers, else None (the router's)."""
    completed: bool | None = None
    limit = DEFAULT_LIMIT
    offset = 0
    if not query:
        return completed, limit, offset
    seen: set[bytes] = set()
    for pair in query.split(b"&"):
        name, equals, value = pair.partition(b"=")
        if not equals or name in seen:
            return None
        seen.add(name)
        if name == b"completed":
            if value == b"true":
                completed = True
            elif value == b"false":
                completed = False
            else:
                return None
        elif name == b"limit":
            number = _number(value, MAX_LIMIT)
            if number is None or number < 1:
                return None
            limit = number
        elif name == b"offset":
            number = _number(value, MAX_OFFSET)
            if number is None:
                return None
            offset = number
        else:
            return None
    return completed, limit, offset


class FastTaskList:
    """The layer: `app` is what Litestar's CORS layer wraps (its exception layer and router)."""

    __slots__ = ("answered", "app", "handlers", "litestar")

    def __init__(self, app: ASGIApp, litestar: Litestar) -> None:
        self.app = app
        self.litestar = litestar
        self.answered = 0
        # The task list's handler under /api and under /api/v1: what the router returns for it.
        self.handlers = frozenset(
            id(route.route_handler_map["GET"][0])
            for route in litestar.routes
            if isinstance(route, HTTPRoute)
            and "GET" in route.route_handler_map
            and route.route_handler_map["GET"][0].operation_id == LIST_OPERATION_ID
        )
        litestar.state[STATE_KEY] = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not await self._answered(scope, send):  # type: ignore[typeddict-item]
            await self.app(scope, receive, send)

    async def _answered(self, scope: Scope, send: Send) -> bool:
        query = parse_query(scope["query_string"])
        if query is None:
            return False
        route = routed(self.litestar, scope)
        if route is None or id(route[0]) not in self.handlers:
            return False
        handler, path, params, template = route
        # What the router writes into the scope for this route (it writes the same again if the
        # request goes on to it): the tracing layer and the metrics read the template.
        scope["path"] = path
        scope["path_params"] = params
        scope["route_handler"] = handler
        scope["path_template"] = template  # type: ignore[typeddict-unknown-key]
        state = self.litestar.state
        limiting: RateLimiting = state[RATE_LIMITING_KEY]
        try:
            await limiting.admit(scope)
            caller = await authenticate_remembered(ASGIConnection(scope))
        except Exception:  # kept on the scope: the route raises it again
            return False
        if params["user_id"] != caller.subject:
            return False  # the route's 403 (requires_own_user_id)
        completed, limit, offset = query
        try:
            tasks, total = await queries.list_tasks(
                state.pool, caller.id, caller.subject, completed, limit, offset
            )
        except Exception as exc:
            scope[FAST_PATH_FAILURE_KEY] = exc  # type: ignore[literal-required]
            return False
        status, headers, body = list_answer(scope, tasks, total, completed, limit, offset)
        self.answered += 1
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return True


def fast_task_list(litestar: Litestar) -> Callable[[ASGIApp], ASGIApp]:
    """The wrapper for `cors_only_with_origin(..., inner=...)`: the fast path around what it gets."""
    return lambda app: FastTaskList(app, litestar)
