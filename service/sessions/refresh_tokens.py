"""Sessions: a short-lived access token plus a family of rotating, single-use refresh tokens.

A refresh token is 256 random bits, shown to the client once and stored only as its SHA-256.
Each refresh spends the presented token and issues its successor in the same family; the
family ends REFRESH_TOKEN_EXPIRE_DAYS after login however often it rotates. Presenting a
spent token again means two parties hold it, so the whole family is revoked (RFC 9700 4.14.2).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import NamedTuple

import asyncpg
from litestar.exceptions import NotAuthorizedException

from service.db.pool import in_transaction
from service.observability.audit import ActorRef, RequestOrigin, Target, record_event
from service.security.auth import Caller
from service.security.tokens import issue_access_token
from service.sessions import queries
from service.sessions.models import Token
from service.settings import Settings

REFRESH_TOKEN_BYTES = 32


class SessionEnded(NotAuthorizedException):
    """401 for a spent refresh token presented again: its whole session has just been ended."""


def refresh_token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _new_refresh_token() -> tuple[str, bytes]:
    token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    return token, refresh_token_digest(token)


class NewSession(NamedTuple):
    """A new session's first pair, and what its refresh family's row stores of them."""

    token: Token
    refresh_digest: bytes
    access_jti: uuid.UUID


def new_session(settings: Settings, user_id: uuid.UUID) -> NewSession:
    """The first pair of a new session, not stored yet: start_session (or the login's single
    statement, sql/accounts/start_password_session.sql) stores its refresh family."""
    access = issue_access_token(settings, user_id)
    refresh, digest = _new_refresh_token()
    token = Token(access_token=access.token, expires_in=access.expires_in, refresh_token=refresh)
    return NewSession(token, digest, access.jti)


async def start_session(
    connection: asyncpg.Connection, settings: Settings, user_id: uuid.UUID, origin: RequestOrigin
) -> Token:
    """A new refresh family and its first pair; call inside the login's transaction."""
    session = new_session(settings, user_id)
    await queries.start_refresh_family(
        connection,
        session.refresh_digest,
        user_id,
        session.access_jti,
        origin.user_agent,
        origin.ip,
        settings.refresh_token_expire_days,
    )
    return session.token


async def lock_user_sessions(connection: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    """Take the lock that serialises ending this user's sessions with their refreshes (see
    sql/sessions/lock_user_sessions.sql); the first statement of every transaction that ends
    sessions. False when there is no such user."""
    return await queries.lock_user_sessions(connection, user_id)


async def rotate_session(
    pool: asyncpg.Pool, settings: Settings, presented: str, origin: RequestOrigin
) -> Token:
    """Spend `presented` and return the next pair of its family, or raise 401."""
    digest = refresh_token_digest(presented)

    async def rotate(connection: asyncpg.Connection) -> Token | None:
        # Share-lock the owner first: a revocation in flight finishes before this refresh reads
        # the token, and one that starts now waits for its successor to be committed.
        if not await queries.lock_refresh_owner(connection, digest):
            return None
        spent = await queries.spend_refresh_token(connection, digest)
        if spent is None:
            return None
        access = issue_access_token(settings, spent["user_id"])
        refresh, successor_digest = _new_refresh_token()
        successor_id = await queries.insert_refresh_successor(
            connection, spent["id"], successor_digest, access.jti, origin.user_agent, origin.ip
        )
        await queries.mark_refresh_token_replaced(connection, spent["id"], successor_id)
        return Token(access_token=access.token, expires_in=access.expires_in, refresh_token=refresh)

    token = await in_transaction(pool, rotate)
    if token is not None:
        return token
    raise await _refusal(pool, settings, digest, origin)


async def _refusal(
    pool: asyncpg.Pool, settings: Settings, digest: bytes, origin: RequestOrigin
) -> NotAuthorizedException:
    """Why the token could not be spent; a spent token presented again ends its family, access
    tokens included (SessionEnded)."""
    found = await queries.find_refresh_token(pool, digest)
    if found is None:
        return NotAuthorizedException("invalid refresh token")
    if found["rotated"]:

        async def end_family(connection: asyncpg.Connection) -> None:
            await lock_user_sessions(connection, found["user_id"])
            await queries.revoke_refresh_family(
                connection, found["family_id"], settings.access_token_expire_minutes * 60
            )
            await record_event(
                connection,
                "auth.refresh_reuse_detected",
                origin=origin,
                actor=ActorRef(found["user_id"], None),
                target=Target.session(found["family_id"]),
            )

        await in_transaction(pool, end_family)
        return SessionEnded("refresh token was already used; the session has been ended, log in again")
    if found["revoked"]:
        return NotAuthorizedException("refresh token has been revoked")
    if found["expired"]:
        return NotAuthorizedException("refresh token expired; log in again")
    return NotAuthorizedException("account is not active")


async def log_out(
    pool: asyncpg.Pool, settings: Settings, caller: Caller, refresh_token: str | None, origin: RequestOrigin
) -> None:
    """Logout: the caller's access token and its refresh family (and that of `refresh_token`) end
    now, every access token issued in them included."""
    digest = refresh_token_digest(refresh_token) if refresh_token else None

    async def end(connection: asyncpg.Connection) -> None:
        await lock_user_sessions(connection, caller.id)
        if caller.token_jti is not None:
            await queries.revoke_access_token(
                connection, caller.token_jti, caller.id, caller.token_expires_at
            )
        await queries.revoke_session(
            connection, caller.id, caller.token_jti, digest, settings.access_token_expire_minutes * 60
        )
        await record_event(
            connection, "auth.logout", origin=origin, actor=caller, target=Target.user(caller.id)
        )

    await in_transaction(pool, end)


async def revoke_other_refresh_families(connection: asyncpg.Connection, caller: Caller) -> None:
    """After a password change: revoke every refresh family of the caller except the one the
    caller's access token came from (their access tokens end by `tokens_valid_after`); call after
    `lock_user_sessions` in the same transaction."""
    await queries.revoke_other_sessions(connection, caller.id, caller.token_jti)
