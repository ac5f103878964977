"""asyncpg internals: the pool's one acquire path.

`Pool._acquire(timeout)` is the method `acquire()`, `fetch()`, `execute()` and the rest of the
pool's shortcuts go through (checked with asyncpg 0.30-0.32; the service needs 0.32). Waiters
for a connection are not served in order (MagicStack/asyncpg#1247, "Potential starvation with
connection pool"), so the service puts a first-come-first-served gate in front of it
(service/db/pool.py: FairPool).
tests/compat/test_asyncpg.py fails when a release routes around `_acquire`.

The pool starts empty, so that a worker starts while the database is down (service.db.pool):
asyncpg 0.32 refuses an `init_size` below `min_size`, but keeps a `min_size` floor in the
background once started (`_maintain_min_size`, retrying every 1 to 60 s). `fill_floor_in_background`
gives a pool created with `min_size=0` its floor afterwards (the private `_minsize`, and
`_schedule_min_size_maintenance`), and `quiet_floor_retries` drops the line with a traceback that
asyncpg logs for each failed attempt while the database is down (the service logs an outage once).
tests/compat/test_asyncpg.py fails when any of these move.
"""

from __future__ import annotations

import logging
from types import CodeType
from typing import Any

import asyncpg


class AcquireHookPool(asyncpg.Pool):
    """asyncpg's pool with hooks around the internal acquire every public path uses."""

    async def before_acquire(self, timeout: float | None) -> float | None:  # noqa: ASYNC109
        """Wait for a turn; the timeout left for asyncpg's own wait."""
        return timeout

    def acquire_failed(self, exc: BaseException) -> BaseException | None:
        """The acquire after `before_acquire` raised `exc` (or was cancelled); an exception to
        raise instead of it, or None."""
        return None

    def acquired(self, connection: Any) -> None:
        """`connection` is handed out."""

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 - asyncpg's signature
        timeout = await self.before_acquire(timeout)
        try:
            connection = await super()._acquire(timeout)
        except BaseException as exc:
            replacement = self.acquire_failed(exc)
            if replacement is not None:
                raise replacement from exc
            raise
        self.acquired(connection)
        return connection


def hooked_acquire_code() -> CodeType:
    """The code of the acquire wrapper: where a pooled connection's wait runs (and times out)."""
    return AcquireHookPool._acquire.__code__


# asyncpg/pool.py, Pool._maintain_min_size: logger.warning(FLOOR_RETRY_MESSAGE, exc_info=True).
FLOOR_RETRY_LOGGER = "asyncpg.pool"
FLOOR_RETRY_MESSAGE = "Failed to restore the pool connection floor; retrying"


class _DropFloorRetries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != FLOOR_RETRY_MESSAGE


_drop_floor_retries = _DropFloorRetries()


def fill_floor_in_background(pool: asyncpg.Pool, min_size: int) -> None:
    """Keep `min_size` connections open from now on, opening them in the background."""
    pool._minsize = min_size  # type: ignore[attr-defined]
    pool._schedule_min_size_maintenance()  # type: ignore[attr-defined]


def quiet_floor_retries() -> None:
    """Drop asyncpg's line for each failed background attempt to refill the pool (idempotent)."""
    logging.getLogger(FLOOR_RETRY_LOGGER).addFilter(_drop_floor_retries)
