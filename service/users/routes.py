"""/api/users: the admin list, read, update and delete for the user themself or an admin, and an
admin's view of a user's sessions (/api/users/{id}/sessions)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, HttpMethod, Request, delete, get, route
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody, QueryParameter

from service.http.errors import require_json_body
from service.http.openapi import BEARER_SECURITY, problem_responses
from service.http.patterns import NO_NUL
from service.observability.audit import RequestOrigin
from service.security.auth import CALLER_DEPENDENCY, Caller
from service.security.guards import access, requires_admin, requires_self_or_admin
from service.sessions.models import Session
from service.users import queries, service
from service.users.models import Role, User, UserPage, UserUpdate

SearchText = Annotated[
    str | None,
    QueryParameter(
        max_length=320,
        pattern=NO_NUL,
        description="Case-insensitive substring of the email; % and _ match themselves.",
    ),
]
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size (1-100).")]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000, description="Users to skip.")]


def _update_user_operation_id(handler: HTTPRouteHandler, method: str, path: list[Any]) -> str:
    # One handler serves both methods; each operation needs its own id.
    return "putUser" if method == HttpMethod.PUT else "updateUser"


class UsersController(Controller):
    path = "/users"
    tags = ["users"]
    dependencies = CALLER_DEPENDENCY
    security = BEARER_SECURITY

    @get(
        "/",
        operation_id="listUsers",
        before_request=access(requires_admin),
        summary="List users (admin)",
        responses=problem_responses(400, 401, 403),
    )
    async def list_users(
        self,
        state: State,
        q: SearchText = None,
        role: Annotated[Role | None, QueryParameter()] = None,
        is_active: Annotated[bool | None, QueryParameter()] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> UserPage:
        """Newest first, with the total number of matching users for paging."""
        users, total = await queries.list_users(
            state.pool, q=q, role=role, is_active=is_active, limit=limit, offset=offset
        )
        return UserPage(items=users, total=total, limit=limit, offset=offset)

    @get(
        "/{user_id:uuid}",
        operation_id="getUser",
        before_request=access(requires_self_or_admin),
        summary="Get a user (self or admin)",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def get_user(self, state: State, user_id: FromPath[uuid.UUID]) -> User:
        user = await queries.get_user(state.pool, user_id)
        if user is None:
            raise NotFoundException(f"no user {user_id}")
        return user

    @route(
        "/{user_id:uuid}",
        http_method=[HttpMethod.PATCH, HttpMethod.PUT],
        operation_id=_update_user_operation_id,
        summary="Update a user (self or admin)",
        before_request=access(requires_self_or_admin, require_json_body),
        responses=problem_responses(400, 401, 403, 404, 409, 413, 415),
    )
    async def update_user(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        user_id: FromPath[uuid.UUID],
        data: JSONBody[UserUpdate],
    ) -> User:
        """A partial update; PUT means the same as PATCH.

        Anyone may change their own `full_name`; only an administrator may change `role` and
        `is_active` (403 for anyone else). Demoting or deactivating a user ends their sessions
        at once. The last active administrator cannot be demoted or deactivated (409).
        """
        return await service.update_user(state.pool, caller, user_id, data, RequestOrigin.of(request))

    @delete(
        "/{user_id:uuid}",
        before_request=access(requires_self_or_admin),
        operation_id="deleteUser",
        summary="Delete a user (self or admin)",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def delete_user(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        user_id: FromPath[uuid.UUID],
    ) -> None:
        """Deletes the account with its sessions and data; their tokens stop working at once.
        The last active administrator cannot be deleted (409)."""
        await service.delete_user(state.pool, caller, user_id, RequestOrigin.of(request))


class UserSessionsController(Controller):
    path = "/users/{user_id:uuid}/sessions"
    tags = ["users"]
    dependencies = CALLER_DEPENDENCY
    security = BEARER_SECURITY
    before_request = access(requires_admin)  # type: ignore[assignment]

    @get(
        "/",
        operation_id="listUserSessions",
        summary="A user's sessions (admin)",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def list_user_sessions(self, state: State, user_id: FromPath[uuid.UUID]) -> list[Session]:
        """The user's live sessions, newest first; `current` is always false here."""
        return await service.list_user_sessions(state.pool, user_id)

    @delete(
        "/",
        operation_id="endUserSessions",
        summary="End every session of a user (admin)",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def end_user_sessions(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        user_id: FromPath[uuid.UUID],
    ) -> None:
        """Every refresh token and every access token issued in a session of this user stop
        working at once (a compromised account); audited as `user.sessions_ended`."""
        await service.end_user_sessions(
            state.pool, state.settings, caller, user_id, RequestOrigin.of(request)
        )
