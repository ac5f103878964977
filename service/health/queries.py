"""The readiness query: which migrations the database has applied."""

from __future__ import annotations

import asyncpg

from service.db.sql import load_sql

APPLIED_MIGRATIONS = load_sql("health/applied_migrations")


async def applied_migrations(pool: asyncpg.Pool, timeout: float) -> list[str]:  # noqa: ASYNC109
    """The ids yoyo recorded as applied, each wait bounded by `timeout`; none before yoyo ever ran."""
    try:
        async with pool.acquire(timeout=timeout) as connection:
            rows = await connection.fetch(APPLIED_MIGRATIONS, timeout=timeout)
    except asyncpg.UndefinedTableError:
        return []
    return [row["migration_id"] for row in rows]
