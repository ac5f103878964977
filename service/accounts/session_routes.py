"""/api/auth/sessions (the caller's own sessions) and /api/users/{id}/sessions (an admin's view)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath

from service.accounts import session_management
from service.accounts.models import Session
from service.audit.events import RequestOrigin
from service.http.errors import problem_responses
from service.security.auth import BEARER_SECURITY, CALLER_DEPENDENCY, Caller
from service.security.guards import requires_admin


class SessionsController(Controller):
    path = "/auth/sessions"
    tags = ["auth"]
    dependencies = CALLER_DEPENDENCY
    security = BEARER_SECURITY

    @get("/", operation_id="listSessions", summary="The caller's sessions", responses=problem_responses(401))
    async def list_sessions(self, state: State, caller: NamedDependency[Caller]) -> list[Session]:
        """Every live session of the caller (one per login, however often refreshed), newest
        first; `current` marks the one this access token belongs to."""
        return await session_management.list_sessions(state.pool, caller.id, caller.token_jti)

    @delete(
        "/{session_id:uuid}",
        operation_id="endSession",
        summary="End one of the caller's sessions",
        responses=problem_responses(400, 401, 404),
    )
    async def end_session(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        session_id: FromPath[uuid.UUID],
    ) -> None:
        """Its refresh token and every access token issued in it stop working at once, on every
        worker and host. 404 for a session that is not the caller's or has already ended."""
        await session_management.end_session(
            state.pool, state.settings, caller, session_id, RequestOrigin.of(request)
        )

    @delete(
        "/",
        operation_id="endOtherSessions",
        summary="End every other session of the caller",
        responses=problem_responses(401),
    )
    async def end_other_sessions(
        self, request: Request[Any, Any, Any], state: State, caller: NamedDependency[Caller]
    ) -> None:
        """Every session of the caller except the current one ends at once ("log out everywhere else")."""
        await session_management.end_other_sessions(
            state.pool, state.settings, caller, RequestOrigin.of(request)
        )


class UserSessionsController(Controller):
    path = "/users/{user_id:uuid}/sessions"
    tags = ["users"]
    dependencies = CALLER_DEPENDENCY
    security = BEARER_SECURITY
    guards = [requires_admin]

    @get(
        "/",
        operation_id="listUserSessions",
        summary="A user's sessions (admin)",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def list_user_sessions(self, state: State, user_id: FromPath[uuid.UUID]) -> list[Session]:
        """The user's live sessions, newest first; `current` is always false here."""
        return await session_management.list_user_sessions(state.pool, user_id)

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
        await session_management.end_user_sessions(
            state.pool, state.settings, caller, user_id, RequestOrigin.of(request)
        )
