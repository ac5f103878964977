"""The security package's own query: sql/caller_cache/heartbeat.sql, which proves the caller
cache's LISTEN connection alive. The caller's row (sql/accounts/get_caller.sql) and its two-factor
state are read through service.accounts.queries and service.two_factor.queries."""

from __future__ import annotations

import asyncpg

from service.db.sql import load_sql

HEARTBEAT = load_sql("caller_cache/heartbeat")


async def heartbeat(connection: asyncpg.Connection) -> None:
    await connection.fetchval(HEARTBEAT)
