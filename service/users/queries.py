"""The user reads: sql/users/ files that list and fetch users (changes are in service.py, each
with its audit event)."""

from __future__ import annotations

import uuid

import asyncpg

from service.db.sql import load_sql, row_to, rows_to
from service.users.models import User

LIST_USERS = load_sql("users/list_users")
COUNT_USERS = load_sql("users/count_users")
GET_USER = load_sql("users/get_user")


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
