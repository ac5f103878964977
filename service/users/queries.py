"""The user queries: each runs one file of sql/users/ (the business rules, the transactions and
the audit events are in service.py and create_admin.py, which call these)."""

from __future__ import annotations

import uuid

import asyncpg

from service.db.sql import load_sql, row_to, rows_to
from service.users.models import User

LIST_USERS = load_sql("users/list_users")
COUNT_USERS = load_sql("users/count_users")
GET_USER = load_sql("users/get_user")
LOCK_USER = load_sql("users/lock_user")
LOCK_USER_FOR_DELETE = load_sql("users/lock_user_for_delete")
LOCK_ADMIN_SET = load_sql("users/lock_admin_set")
COUNT_OTHER_ACTIVE_ADMINS = load_sql("users/count_other_active_admins")
UPDATE_USER = load_sql("users/update_user")
REVOKE_REFRESH_TOKENS = load_sql("users/revoke_refresh_tokens")
DELETE_USER = load_sql("users/delete_user")
FIND_LOCAL_USER = load_sql("users/find_local_user")
INSERT_ADMIN = load_sql("users/insert_admin")
PROMOTE_USER = load_sql("users/promote_user")


async def list_users(
    pool: asyncpg.Pool, *, q: str | None, role: str | None, is_active: bool | None, limit: int, offset: int
) -> tuple[list[User], int]:
    """One page, newest first, and how many match over all pages (both read from one snapshot)."""
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = await connection.fetch(LIST_USERS, q, role, is_active, limit, offset)
        total = await connection.fetchval(COUNT_USERS, q, role, is_active)
    return rows_to(User, rows), total


async def get_user(db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID) -> User | None:
    row = await db.fetchrow(GET_USER, user_id)
    return None if row is None else row_to(User, row)


def _user(row: asyncpg.Record | None) -> User | None:
    return None if row is None else row_to(User, row)


async def lock_user(connection: asyncpg.Connection, user_id: uuid.UUID) -> User | None:
    return _user(await connection.fetchrow(LOCK_USER, user_id))


async def lock_user_for_delete(connection: asyncpg.Connection, user_id: uuid.UUID) -> User | None:
    return _user(await connection.fetchrow(LOCK_USER_FOR_DELETE, user_id))


async def lock_admin_set(connection: asyncpg.Connection) -> None:
    """The transaction-level lock every change that may take away an administrator takes first."""
    await connection.execute(LOCK_ADMIN_SET)


async def count_other_active_admins(connection: asyncpg.Connection, user_id: uuid.UUID) -> int:
    count: int = await connection.fetchval(COUNT_OTHER_ACTIVE_ADMINS, user_id)
    return count


async def update_user(
    connection: asyncpg.Connection,
    user_id: uuid.UUID,
    full_name: str | None,
    role: str,
    is_active: bool,
    end_sessions: bool,
) -> User:
    return row_to(
        User, await connection.fetchrow(UPDATE_USER, user_id, full_name, role, is_active, end_sessions)
    )


async def revoke_refresh_tokens(connection: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await connection.execute(REVOKE_REFRESH_TOKENS, user_id)


async def delete_user(connection: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await connection.execute(DELETE_USER, user_id)


async def find_local_user(connection: asyncpg.Connection, email: str) -> User | None:
    return _user(await connection.fetchrow(FIND_LOCAL_USER, email))


async def insert_admin(connection: asyncpg.Connection, email: str, password_hash: str) -> User | None:
    """The new administrator; None when a local account with this email appeared meanwhile."""
    return _user(await connection.fetchrow(INSERT_ADMIN, email, password_hash))


async def promote_user(connection: asyncpg.Connection, user_id: uuid.UUID, password_hash: str | None) -> User:
    return row_to(User, await connection.fetchrow(PROMOTE_USER, user_id, password_hash))
