"""asyncpg internals: the pool's one acquire path.

`Pool._acquire(timeout)` is the method `acquire()`, `fetch()`, `execute()` and the rest of the
pool's shortcuts go through (checked with asyncpg 0.30-0.32). Waiters for a connection are not served in
order (MagicStack/asyncpg#1247, "Potential starvation with connection pool"), so the service
puts a first-come-first-served gate in front of it (service/db/pool.py: FairPool).
tests/compat/test_asyncpg.py fails when a release routes around `_acquire`.
"""

from __future__ import annotations

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
