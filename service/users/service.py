"""Changing and deleting users: who may set what, the last-admin rule, audit rows, token revocation.

Every change runs in one transaction with its audit rows: both commit, or neither does.
"""

from __future__ import annotations

import uuid

import asyncpg
from litestar.exceptions import NotFoundException, PermissionDeniedException
from msgspec import UNSET

from service.db.pool import in_transaction
from service.http.errors import Conflict
from service.observability.audit import RequestOrigin, Target, record_event
from service.security.auth import Caller
from service.sessions.models import Session
from service.sessions.refresh_tokens import lock_user_sessions
from service.sessions.service import end_live_sessions, list_sessions
from service.settings import Settings
from service.users import queries
from service.users.models import User, UserUpdate


async def _locked_user(
    connection: asyncpg.Connection, user_id: uuid.UUID, *, for_delete: bool = False
) -> User:
    lock = queries.lock_user_for_delete if for_delete else queries.lock_user
    user = await lock(connection, user_id)
    if user is None:
        raise NotFoundException(f"no user {user_id}")
    return user


async def _keep_an_admin(connection: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """Refuse to take away the last active administrator: nobody could manage users afterwards."""
    if await queries.count_other_active_admins(connection, user_id) == 0:
        raise Conflict("this is the last active administrator; make another user an admin first")


async def update_user(
    pool: asyncpg.Pool, caller: Caller, user_id: uuid.UUID, changes: UserUpdate, origin: RequestOrigin
) -> User:
    if changes.admin_fields and not caller.is_admin:
        raise PermissionDeniedException(
            f"only an administrator may change {' or '.join(changes.admin_fields)}"
        )

    async def change(connection: asyncpg.Connection) -> User:
        if changes.admin_fields:
            await queries.lock_admin_set(connection)
        current = await _locked_user(connection, user_id)
        full_name = current.full_name if changes.full_name is UNSET else changes.full_name
        role = current.role if changes.role is UNSET else changes.role
        is_active = current.is_active if changes.is_active is UNSET else changes.is_active
        if (full_name, role, is_active) == (current.full_name, current.role, current.is_active):
            return current
        demoted = current.role == "admin" and role != "admin"
        deactivated = current.is_active and not is_active
        if current.role == "admin" and current.is_active and (demoted or deactivated):
            await _keep_an_admin(connection, user_id)
        end_sessions = demoted or deactivated
        updated = await queries.update_user(connection, user_id, full_name, role, is_active, end_sessions)
        if end_sessions:
            await queries.revoke_refresh_tokens(connection, user_id)
        await _record_update(connection, caller, origin, current, updated)
        return updated

    return await in_transaction(pool, change)


async def _record_update(
    connection: asyncpg.Connection, caller: Caller, origin: RequestOrigin, before: User, after: User
) -> None:
    events: list[tuple[str, dict[str, object]]] = []
    if before.full_name != after.full_name:
        events.append(("user.updated", {"fields": ["full_name"]}))
    if before.role != after.role:
        events.append(("user.role_changed", {"from": before.role, "to": after.role}))
    if before.is_active != after.is_active:
        events.append(("user.reactivated" if after.is_active else "user.deactivated", {}))
    for action, details in events:
        await record_event(
            connection,
            action,
            origin=origin,
            actor=caller,
            target=Target.user(after.id),
            details={"email": after.email, **details},
        )


async def delete_user(pool: asyncpg.Pool, caller: Caller, user_id: uuid.UUID, origin: RequestOrigin) -> None:
    async def delete(connection: asyncpg.Connection) -> None:
        await queries.lock_admin_set(connection)
        current = await _locked_user(connection, user_id, for_delete=True)
        if current.role == "admin" and current.is_active:
            await _keep_an_admin(connection, user_id)
        # Written before the delete: the actor may be the deleted user, and the row's actor_id
        # must point at an existing user when inserted (the delete then sets it to NULL).
        await record_event(
            connection,
            "user.deleted",
            origin=origin,
            actor=caller,
            target=Target.user(user_id),
            details={"email": current.email, "role": current.role, "provider": current.provider},
        )
        await queries.delete_user(connection, user_id)

    await in_transaction(pool, delete)


async def list_user_sessions(pool: asyncpg.Pool, user_id: uuid.UUID) -> list[Session]:
    """An admin's view of a user's sessions (none is `current`); 404 for an unknown user."""
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        if await queries.get_user(connection, user_id) is None:
            raise NotFoundException(f"no user {user_id}")
        return await list_sessions(connection, user_id, None)


async def end_user_sessions(
    pool: asyncpg.Pool, settings: Settings, admin: Caller, user_id: uuid.UUID, origin: RequestOrigin
) -> None:
    """An admin ends every live session of a user (a compromised account); 404 for an unknown user."""
    async with pool.acquire() as connection, connection.transaction():
        if not await lock_user_sessions(connection, user_id):
            raise NotFoundException(f"no user {user_id}")
        ended = await end_live_sessions(connection, settings, user_id)
        await record_event(
            connection,
            "user.sessions_ended",
            origin=origin,
            actor=admin,
            target=Target.user(user_id),
            details={"count": len(ended), "session_ids": ended},
        )
