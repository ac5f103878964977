"""Listing and ending sessions: by the user themself (one, or every other), or all of a user's
by an admin (service/users/service.py).

Ending a session revokes its refresh-token family and records every access token issued in it
in `revoked_access_tokens`, which every worker and host checks on each request, so the session
stops working everywhere at once. Each ending takes the user's row lock first
(`lock_user_sessions`), the order every session-ending transaction follows.
"""

from __future__ import annotations

import uuid

import asyncpg
from litestar.exceptions import NotFoundException

from service.observability.audit import RequestOrigin, Target, record_event
from service.security.auth import Caller
from service.sessions import queries
from service.sessions.models import Session
from service.sessions.refresh_tokens import lock_user_sessions
from service.settings import Settings


async def list_sessions(
    db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID, current_jti: uuid.UUID | None
) -> list[Session]:
    return await queries.list_sessions(db, user_id, current_jti)


async def end_live_sessions(
    connection: asyncpg.Connection,
    settings: Settings,
    user_id: uuid.UUID,
    *,
    only: uuid.UUID | None = None,
    keep_access_jti: uuid.UUID | None = None,
) -> list[str]:
    """End the user's live sessions (only `only`, or all but the one of `keep_access_jti`), with
    every access token issued in them; the ended sessions' ids, sorted. Call after
    `lock_user_sessions` in the same transaction."""
    lifetime_seconds = settings.access_token_expire_minutes * 60
    ended = await queries.end_sessions(connection, user_id, only, keep_access_jti, lifetime_seconds)
    return sorted(str(session_id) for session_id in ended)


async def end_session(
    pool: asyncpg.Pool, settings: Settings, caller: Caller, session_id: uuid.UUID, origin: RequestOrigin
) -> None:
    """End one of the caller's live sessions (the current one too); 404 when it is not theirs or not live."""
    async with pool.acquire() as connection, connection.transaction():
        await lock_user_sessions(connection, caller.id)
        if not await end_live_sessions(connection, settings, caller.id, only=session_id):
            raise NotFoundException(f"no live session {session_id}")
        await record_event(
            connection, "auth.session_ended", origin=origin, actor=caller, target=Target.session(session_id)
        )


async def end_other_sessions(
    pool: asyncpg.Pool, settings: Settings, caller: Caller, origin: RequestOrigin
) -> None:
    """End every live session of the caller except the one of this request's access token."""
    async with pool.acquire() as connection, connection.transaction():
        await lock_user_sessions(connection, caller.id)
        ended = await end_live_sessions(connection, settings, caller.id, keep_access_jti=caller.token_jti)
        await record_event(
            connection,
            "auth.other_sessions_ended",
            origin=origin,
            actor=caller,
            target=Target.user(caller.id),
            details={"count": len(ended), "session_ids": ended},
        )
