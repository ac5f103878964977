"""The session queries: each runs one file of sql/sessions/ (refresh-token families and the
revoked access tokens). The callers open the transactions; a function here takes its connection."""

from __future__ import annotations

import uuid

import asyncpg

from service.db.sql import load_sql, rows_to
from service.sessions.models import Session

START_REFRESH_FAMILY = load_sql("sessions/start_refresh_family")
SPEND_REFRESH_TOKEN = load_sql("sessions/spend_refresh_token")
INSERT_REFRESH_SUCCESSOR = load_sql("sessions/insert_refresh_successor")
MARK_REFRESH_TOKEN_REPLACED = load_sql("sessions/mark_refresh_token_replaced")
FIND_REFRESH_TOKEN = load_sql("sessions/find_refresh_token")
REVOKE_REFRESH_FAMILY = load_sql("sessions/revoke_refresh_family")
REVOKE_SESSION = load_sql("sessions/revoke_session")
REVOKE_OTHER_SESSIONS = load_sql("sessions/revoke_other_sessions")
REVOKE_ACCESS_TOKEN = load_sql("sessions/revoke_access_token")
LOCK_USER_SESSIONS = load_sql("sessions/lock_user_sessions")
LOCK_REFRESH_OWNER = load_sql("sessions/lock_refresh_owner")
LIST_SESSIONS = load_sql("sessions/list_sessions")
END_SESSIONS = load_sql("sessions/end_sessions")


async def start_refresh_family(
    connection: asyncpg.Connection,
    digest: bytes,
    user_id: uuid.UUID,
    access_jti: uuid.UUID,
    user_agent: str | None,
    ip: str | None,
    lifetime_days: int,
) -> None:
    await connection.execute(START_REFRESH_FAMILY, digest, user_id, access_jti, user_agent, ip, lifetime_days)


async def lock_user_sessions(connection: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    """Take the lock that serialises ending this user's sessions with their refreshes (see
    sql/sessions/lock_user_sessions.sql); the first statement of every transaction that ends
    sessions. False when there is no such user."""
    return await connection.fetchval(LOCK_USER_SESSIONS, user_id) is not None


async def lock_refresh_owner(connection: asyncpg.Connection, digest: bytes) -> bool:
    """Share-lock the owner of the refresh token with this digest; False when there is none."""
    return await connection.fetchval(LOCK_REFRESH_OWNER, digest) is not None


async def spend_refresh_token(connection: asyncpg.Connection, digest: bytes) -> asyncpg.Record | None:
    """Mark a live refresh token of an active user spent: its id, family_id and user_id, else None."""
    return await connection.fetchrow(SPEND_REFRESH_TOKEN, digest)


async def insert_refresh_successor(
    connection: asyncpg.Connection,
    spent_id: uuid.UUID,
    digest: bytes,
    access_jti: uuid.UUID,
    user_agent: str | None,
    ip: str | None,
) -> uuid.UUID:
    successor_id: uuid.UUID = await connection.fetchval(
        INSERT_REFRESH_SUCCESSOR, spent_id, digest, access_jti, user_agent, ip
    )
    return successor_id


async def mark_refresh_token_replaced(
    connection: asyncpg.Connection, spent_id: uuid.UUID, successor_id: uuid.UUID
) -> None:
    await connection.execute(MARK_REFRESH_TOKEN_REPLACED, spent_id, successor_id)


async def find_refresh_token(db: asyncpg.Pool | asyncpg.Connection, digest: bytes) -> asyncpg.Record | None:
    """family_id, user_id, and whether it was rotated, revoked or expired; None when unknown."""
    return await db.fetchrow(FIND_REFRESH_TOKEN, digest)


async def revoke_refresh_family(
    connection: asyncpg.Connection, family_id: uuid.UUID, access_seconds: int
) -> None:
    await connection.execute(REVOKE_REFRESH_FAMILY, family_id, access_seconds)


async def revoke_access_token(
    connection: asyncpg.Connection, jti: uuid.UUID, user_id: uuid.UUID, expires_at: float
) -> None:
    await connection.execute(REVOKE_ACCESS_TOKEN, jti, user_id, expires_at)


async def revoke_session(
    connection: asyncpg.Connection,
    user_id: uuid.UUID,
    access_jti: uuid.UUID | None,
    refresh_digest: bytes | None,
    access_seconds: int,
) -> None:
    """End the families of this access token and of this refresh token, with their access tokens."""
    await connection.execute(REVOKE_SESSION, user_id, access_jti, refresh_digest, access_seconds)


async def revoke_other_sessions(
    connection: asyncpg.Connection, user_id: uuid.UUID, keep_access_jti: uuid.UUID | None
) -> None:
    await connection.execute(REVOKE_OTHER_SESSIONS, user_id, keep_access_jti)


async def list_sessions(
    db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID, current_jti: uuid.UUID | None
) -> list[Session]:
    return rows_to(Session, await db.fetch(LIST_SESSIONS, user_id, current_jti))


async def end_sessions(
    connection: asyncpg.Connection,
    user_id: uuid.UUID,
    only: uuid.UUID | None,
    keep_access_jti: uuid.UUID | None,
    lifetime_seconds: int,
) -> list[uuid.UUID]:
    """End the user's live sessions (only `only`, or all but the one of `keep_access_jti`), with
    every access token issued in them (alive `lifetime_seconds` after issue); the ended sessions' ids."""
    rows = await connection.fetch(END_SESSIONS, user_id, only, keep_access_jti, lifetime_seconds)
    return [row["id"] for row in rows]
