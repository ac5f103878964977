"""asyncpg still sends every public way of taking a connection through `Pool._acquire`, the
internal that service/compat/asyncpg.py hooks (FairPool's first-come-first-served gate)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import asyncpg
import asyncpg.pool

from service.compat.asyncpg import (
    FLOOR_RETRY_LOGGER,
    FLOOR_RETRY_MESSAGE,
    AcquireHookPool,
    fill_floor_in_background,
    quiet_floor_retries,
)


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


async def test_a_pool_starts_empty_and_fills_its_floor_in_the_background(database_url: str) -> None:
    """An empty pool given its floor afterwards: no connection at start, `min_size` of them soon
    after, and each failed refill attempt is logged as FLOOR_RETRY_MESSAGE, which
    quiet_floor_retries drops."""
    source = inspect.getsource(asyncpg.pool.Pool._maintain_min_size)
    assert "logger.warning('Failed to restore the pool connection '" in source
    assert "'floor; retrying'" in source
    assert asyncpg.pool.logger.name == FLOOR_RETRY_LOGGER
    assert FLOOR_RETRY_MESSAGE == "Failed to restore the pool connection floor; retrying"

    pool = CountingPool(
        database_url,
        min_size=0,
        max_size=3,
        max_queries=50_000,
        max_inactive_connection_lifetime=300,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
    )
    await pool
    try:
        assert pool.get_size() == 0
        fill_floor_in_background(pool, 2)
        assert pool.get_min_size() == 2
        for _ in range(200):
            if pool.get_size() == 2:
                break
            await asyncio.sleep(0.05)
        assert pool.get_size() == 2
    finally:
        await pool.close()


def test_quiet_floor_retries_drops_only_that_line() -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(FLOOR_RETRY_LOGGER)
    logger.addHandler(handler)
    try:
        quiet_floor_retries()
        quiet_floor_retries()
        logger.warning("Failed to restore the pool connection floor; retrying", exc_info=False)
        logger.warning("something else")
    finally:
        logger.removeHandler(handler)
    assert [record.getMessage() for record in records] == ["something else"]
