"""asyncpg still sends every public way of taking a connection through `Pool._acquire`, the
internal that service/compat/asyncpg.py hooks (FairPool's first-come-first-served gate)."""

from __future__ import annotations

import inspect
from typing import Any

import asyncpg

from service.compat.asyncpg import AcquireHookPool


class CountingPool(AcquireHookPool):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed_out = 0

    def acquired(self, connection: Any) -> None:
        self.handed_out += 1


def test_the_internal_acquire_keeps_its_signature() -> None:
    assert list(inspect.signature(asyncpg.Pool._acquire).parameters) == ["self", "timeout"]


async def test_every_public_path_takes_its_connection_through_the_hook(database_url: str) -> None:
    pool = CountingPool(
        database_url,
        min_size=1,
        max_size=1,
        max_queries=50_000,
        max_inactive_connection_lifetime=300,
        connect=None,
        setup=None,
        init=None,
        reset=None,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
    )
    await pool
    try:
        assert await pool.fetchval("SELECT 1") == 1
        await pool.fetchrow("SELECT 1")
        await pool.fetch("SELECT 1")
        await pool.execute("SELECT 1")
        async with pool.acquire() as connection:
            await connection.execute("SELECT 1")
        assert pool.handed_out == 5
    finally:
        await pool.close()
