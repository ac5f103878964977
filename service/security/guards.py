"""How a route is authenticated: one way, `before_request=access(requirement, ...)`.

The rule. Every route under /api that is not public declares what it requires with exactly one
`before_request` hook built by `access` below, on its controller or on the handler:

    before_request = access(requires_user)                           # a controller's routes
    before_request=access(requires_admin, require_json_body)          # one route with a JSON body
    before_request=access(requires_user, require_json_body, body_first=True)

A requirement (`requires_user`, `requires_admin`, `requires_self_or_admin`,
`requires_own_user_id`) calls `authenticate` (service/security/auth.py), which verifies the
token once and keeps the caller on the request; anonymous callers get 401, authenticated callers
without the right 403. Handlers receive the caller through the `caller` dependency
(`CALLER_DEPENDENCY`, `caller: NamedDependency[Caller]`), which only reads what the requirement
stored (`authenticated_caller`): it never authenticates, and refuses a request no requirement
authenticated (401, fail closed). The task handlers, the hottest in the API, call
`authenticated_caller(request)` themselves, the function the dependency calls, since resolving a
dependency was about 5 % of a task request's CPU (bench/README.md).

The order of answers. A hook runs before parameters and body are parsed, and `access` runs the
requirement first, then the route's other hooks (`require_json_body`: 415), so a caller without
a token gets 401, then 403, before any 400/413/415. `body_first=True` is for the routes that must
answer an oversized body with 413 before looking at the token (logout and PATCH /me,
tests/reliability/test_hostile_clients.py): the other hooks run, then the body is read (413),
then the requirement.

Why not Litestar guards: Litestar 2.25's `authorize_connection` calls `guard(connection,
copy(handler))`, a copy of the route handler per guard call, which was 5 % of a task-list
request's CPU (bench/README.md). A handler's own `before_request` replaces its controller's, which
is why `access` composes the route's hooks into the one it returns; tests/architecture/
test_route_access.py fails for an /api route that is neither public nor declared through `access`.

OPTIONS needs no token: Litestar's generated OPTIONS handler of a path inherits its controller's
hook, and service/app.py (`_allow_every_method_on_options`) takes it off, so a plain OPTIONS
answers 204 with `Allow` everywhere (tests/architecture/test_route_access.py walks every path).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.exceptions import PermissionDeniedException

from service.security.auth import authenticate

Hook = Callable[[Request[Any, Any, Any]], Awaitable[None]]
# The attribute `access` puts on the hook it returns (and on every requirement): which requirement.
REQUIREMENT_ATTRIBUTE = "access_requirement"


def _requirement(check: Hook) -> Hook:
    setattr(check, REQUIREMENT_ATTRIBUTE, check)
    return check


@_requirement
async def requires_user(request: Request[Any, Any, Any]) -> None:
    await authenticate(request)


@_requirement
async def requires_admin(request: Request[Any, Any, Any]) -> None:
    caller = await authenticate(request)
    if not caller.is_admin:
        raise PermissionDeniedException("administrators only")


@_requirement
async def requires_self_or_admin(request: Request[Any, Any, Any]) -> None:
    """The `user_id` path parameter must be the caller's own id, unless the caller is an admin.

    Decided from the id alone, before any lookup: a non-admin gets the same 403 whether or not
    another user with that id exists, so the answer tells nothing about other accounts.
    """
    caller = await authenticate(request)
    if caller.is_admin:
        return
    if str(request.path_params.get("user_id")) != str(caller.id):
        raise PermissionDeniedException("you may only act on your own account")


@_requirement
async def requires_own_user_id(request: Request[Any, Any, Any]) -> None:
    """The path's user_id must be the caller's token subject: an exact string compare, since
    external subjects (Better Auth, Supabase) are not necessarily UUIDs.

    A `before_request` hook rather than a guard, with the same effect and order: it runs before
    parameters and body are parsed (401, then 403, before any 400/415). Litestar 2 copies the
    route handler object for every guard call, which was 5 % of a task-list request's CPU.
    """
    caller = await authenticate(request)
    if request.path_params["user_id"] != caller.subject:
        raise PermissionDeniedException("user_id in the path is not the authenticated user")


def access(requirement: Hook, *then: Hook, body_first: bool = False) -> Hook:
    """The route's one `before_request` hook: `requirement`, then each of `then` in order; with
    `body_first`, each of `then`, then reading the body (413 past the route's limit; the body is
    kept for the handler), then `requirement`."""
    if getattr(requirement, REQUIREMENT_ATTRIBUTE, None) is not requirement:
        raise TypeError(f"{requirement!r} is not a requirement of service.security.guards")
    if not then and not body_first:
        return requirement  # the task list's hook: no wrapper on the hottest route

    if body_first:

        async def hook(request: Request[Any, Any, Any]) -> None:
            for step in then:
                await step(request)
            await request.body()
            await requirement(request)

    else:

        async def hook(request: Request[Any, Any, Any]) -> None:
            await requirement(request)
            for step in then:
                await step(request)

    setattr(hook, REQUIREMENT_ATTRIBUTE, requirement)
    return hook
