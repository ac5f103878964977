"""Guards: plain functions Litestar runs before a handler; each raises or lets the request through.

Every protected route has one, on its controller or handler: it is how a route is authenticated
(service/security/auth.py). Anonymous callers get 401 (from `authenticate`), authenticated
callers without the right get 403.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from service.security.auth import authenticate


async def requires_user(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    await authenticate(connection)


async def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    caller = await authenticate(connection)
    if not caller.is_admin:
        raise PermissionDeniedException("administrators only")


async def requires_self_or_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The `user_id` path parameter must be the caller's own id, unless the caller is an admin.

    Decided from the id alone, before any lookup: a non-admin gets the same 403 whether or not
    another user with that id exists, so the answer tells nothing about other accounts.
    """
    caller = await authenticate(connection)
    if caller.is_admin:
        return
    if str(connection.path_params.get("user_id")) != str(caller.id):
        raise PermissionDeniedException("you may only act on your own account")


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
