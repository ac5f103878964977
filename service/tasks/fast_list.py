"""The task list's fast path: `GET /api/{user_id}/tasks` answered below Litestar's router.

The task list is the hottest route, and Litestar's own handling of a request (the Request
object, the parameters' signature model, the route's exception layer) costs more CPU than all of
the route's work (bench/README.md: the Litestar floor is 1.6x the bare ASGI floor). So this layer,
in front of Litestar's CORS gate and exception layer (inside our request-context and tracing
layers: request id, headers, access log, metrics, compression all apply as before), answers
the requests without an Origin header that it fully understands itself, with the route's own
pieces: the router's routing decision (`route_of`, remembered per path; the Host header
checked as the router checks it), the rate limit's count (`RateLimiting.admit`),
`authenticate` and the route's `user_id` rule, `queries.list_tasks`, and the route's answer
(`routes.list_answer`: body, ETag, 304, X-Total-Count, Link).

Everything else goes to the router untouched, and is answered there as before: another route or
method (HEAD and OPTIONS included), a request with an Origin header (the CORS layer's), a query
string other than `completed=true|false`, `limit=1..200` and `offset=0..100000` written
plainly, each at most once (so every 400 is Litestar's), another user's id (403). A step that
fails is not answered here either: the request goes to the router with the step's outcome kept
on the scope, and the route raises that same exception where it would have met it (the 429
from `admit`, a 401 or a database outage from `authenticate_remembered`, a failed query through
FAST_PATH_FAILURE_KEY), so the exception handlers answer it as they answer the route's own.
The OpenAPI document is the route's.
tests/tasks/test_fast_list.py sends the same requests to an app with and without this layer and
compares the answers byte for byte.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from service.compat.litestar import Routed, route_of, valid_host
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


# Bounds of the fast path's own memos (cleared when full): the routing decision per path (each
# user's list has its own path) and the Host header values the router's check accepted.
_ROUTES_MAX = 8192
_HOSTS_MAX = 64


class FastTaskList:
    """The layer: `app` is what it hands every other request to (the CORS gate, the exception
    layer and the router). Requests with an Origin header go there too: the CORS layer answers
    for them (a browser's list is answered by the route, as before this path existed)."""

    __slots__ = ("answered", "app", "handlers", "hosts", "litestar", "routes")

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
        # The router's decision for a path never changes once the app is built: asking it again
        # (normalising the path, then matching it) was 2-3 us of each list (bench/inproc.py).
        self.routes: dict[str, Routed] = {}
        self.hosts: set[bytes] = set()
        litestar.state[STATE_KEY] = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # One function rather than a call per step: each frame is resumed at every await.
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):  # type: ignore[typeddict-item]
            await self.app(scope, receive, send)
            return
        host: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"origin":
                await self.app(scope, receive, send)
                return
            if name == b"host" and host is None:
                host = value
        query = parse_query(scope["query_string"])
        route = self._route(scope["path"]) if query is not None and self._valid(host) else None
        if route is None:
            await self.app(scope, receive, send)
            return
        handler, path, params, template = route
        # What the router writes into the scope for this route (it writes the same again if the
        # request goes on to it): the tracing layer and the metrics read the template.
        scope["path"] = path
        scope["path_params"] = dict(params)
        scope["route_handler"] = handler
        scope["path_template"] = template  # type: ignore[typeddict-unknown-key]
        state = self.litestar.state
        limiting: RateLimiting = state[RATE_LIMITING_KEY]
        try:
            await limiting.admit(scope)
            caller = await authenticate_remembered(scope, state)
        except Exception:  # kept on the scope: the route raises it again
            await self.app(scope, receive, send)
            return
        if params["user_id"] != caller.subject:  # the route's 403 (requires_own_user_id)
            await self.app(scope, receive, send)
            return
        completed, limit, offset = query  # type: ignore[misc]
        try:
            # state["pool"], not state.pool: State answers an attribute in __getattr__, after the
            # normal lookup has failed and built an AttributeError (489 against 61 ns, timeit).
            tasks, total = await queries.list_tasks(
                state["pool"], caller.id, caller.subject, completed, limit, offset
            )
        except Exception as exc:
            scope[FAST_PATH_FAILURE_KEY] = exc  # type: ignore[literal-required]
            await self.app(scope, receive, send)
            return
        status, headers, body = list_answer(scope, tasks, total, completed, limit, offset)
        self.answered += 1
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _valid(self, host: bytes | None) -> bool:
        if host is None or host in self.hosts:
            return True
        if not valid_host(host):
            return False
        if len(self.hosts) >= _HOSTS_MAX:
            self.hosts.clear()
        self.hosts.add(host)
        return True

    def _route(self, path: str) -> Routed | None:
        """The router's decision for a GET of `path` when it is the task list, else None."""
        route = self.routes.get(path)
        if route is None:
            route = route_of(self.litestar, path, "GET")
            if route is None or id(route[0]) not in self.handlers:
                return None
            if len(self.routes) >= _ROUTES_MAX:
                self.routes.clear()
            self.routes[path] = route
        return route


def fast_task_list(litestar: Litestar, app: ASGIApp) -> ASGIApp:
    """The fast path in front of `app` (the app's handler with its CORS gate)."""
    return FastTaskList(app, litestar)
