"""/api/auth/sessions: the caller's own sessions (an admin's view: service/users/routes.py)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath

from service.http.openapi import BEARER_SECURITY, problem_responses
from service.observability.audit import RequestOrigin
from service.security.auth import CALLER_DEPENDENCY, Caller
from service.security.guards import access, requires_user
from service.sessions import service as sessions
from service.sessions.models import Session


class SessionsController(Controller):
    path = "/auth/sessions"
    tags = ["auth"]
    dependencies = CALLER_DEPENDENCY
    security = BEARER_SECURITY
    before_request = access(requires_user)  # type: ignore[assignment]

    @get("/", operation_id="listSessions", summary="The caller's sessions", responses=problem_responses(401))
    async def list_sessions(self, state: State, caller: NamedDependency[Caller]) -> list[Session]:
        """Every live session of the caller (one per login, however often refreshed), newest
        first; `current` marks the one this access token belongs to."""
        return await sessions.list_sessions(state.pool, caller.id, caller.token_jti)

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
        await sessions.end_session(state.pool, state.settings, caller, session_id, RequestOrigin.of(request))

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
        await sessions.end_other_sessions(state.pool, state.settings, caller, RequestOrigin.of(request))
