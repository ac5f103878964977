"""The background worker: pgqueuer's QueueManager on a connection of its own, running the jobs
that service.app / service.cli hand it (mail delivery, password-reset requests).

It runs inside each `service serve` worker (MAIL_WORKER=on, the default) and in `service worker`
processes. Every worker of every host takes jobs from the same table (FOR UPDATE SKIP LOCKED), so
a job runs in one of them; a job whose worker died is taken again once its heartbeat is stale.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from datetime import timedelta

import asyncpg
from pgqueuer.adapters.drivers.asyncpg import AsyncpgDriver
from pgqueuer.core.executors import DatabaseRetryEntrypointExecutor, EntrypointExecutorParameters
from pgqueuer.core.qm import QueueManager
from pgqueuer.domain.models import Job
from pgqueuer.queries import Queries

from service.mail.delivery import refresh_mail_gauges

log = logging.getLogger("service.mail.worker")

JobHandler = Callable[[Job], Awaitable[None]]

RECONNECT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
GAUGE_REFRESH_SECONDS = 15.0
# A job whose worker stopped sending heartbeats (killed, cut off) is taken by another after this.
HEARTBEAT_TIMEOUT = timedelta(seconds=30)
# Jobs are also announced by NOTIFY; this bounds how late a job due later (a retry) is noticed.
DEQUEUE_TIMEOUT = timedelta(seconds=5)
BATCH_SIZE = 5
# An unexpected error in a handler (the database went away mid-job) is retried too.
UNEXPECTED_ERROR_ATTEMPTS = 20


def _executor(parameters: EntrypointExecutorParameters) -> DatabaseRetryEntrypointExecutor:
    return DatabaseRetryEntrypointExecutor(
        parameters=parameters,
        max_attempts=UNEXPECTED_ERROR_ATTEMPTS,
        initial_delay=timedelta(seconds=2),
        max_delay=timedelta(minutes=10),
    )


class BackgroundWorker:
    def __init__(
        self,
        url: str,
        handlers: Mapping[str, JobHandler],
        pool: asyncpg.Pool | None = None,
        *,
        pooled: bool = False,
    ) -> None:
        self.url = url
        # Behind a transaction pooler no prepared statement may outlive its transaction, and
        # NOTIFY does not arrive: jobs are then found by polling every DEQUEUE_TIMEOUT.
        self.statement_cache_size = 0 if pooled else 100
        self.handlers = dict(handlers)
        self.pool = pool
        self._stopping = asyncio.Event()
        self._manager: QueueManager | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.run(), name="background-worker"))
        if self.pool is not None:
            self._tasks.append(asyncio.create_task(self._refresh_gauges(self.pool), name="mail-gauges"))

    async def stop(self) -> None:
        self._stopping.set()
        if self._manager is not None:
            self._manager.shutdown.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_SECONDS)
        for task in pending:  # a job still running past the deadline: its heartbeat lets another take it
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def run(self) -> None:
        """Take and run jobs until stopped; a lost database connection is opened again."""
        while not self._stopping.is_set():
            try:
                connection = await asyncpg.connect(
                    self.url,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    statement_cache_size=self.statement_cache_size,
                    server_settings={"application_name": "service-worker"},
                )
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                log.warning("background worker cannot reach the database (%s); retrying", exc)
                await self._pause(RECONNECT_SECONDS)
                continue
            try:
                manager = QueueManager(Queries(AsyncpgDriver(connection)))
                for name, handler in self.handlers.items():
                    manager.entrypoint(name, on_failure="hold", executor_factory=_executor)(handler)
                self._manager = manager
                if self._stopping.is_set():
                    return
                await manager.run(
                    dequeue_timeout=DEQUEUE_TIMEOUT,
                    batch_size=BATCH_SIZE,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                )
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("background worker lost the database (%s); reconnecting", exc)
                await self._pause(RECONNECT_SECONDS)
            except Exception:
                # A defect, not an outage: say so loudly, and keep the worker alive.
                log.exception("background worker failed; starting it again")
                await self._pause(RECONNECT_SECONDS)
            finally:
                self._manager = None
                with suppress(Exception):
                    await asyncio.wait_for(connection.close(), timeout=5)

    async def _pause(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _refresh_gauges(self, pool: asyncpg.Pool) -> None:
        while not self._stopping.is_set():
            try:
                await refresh_mail_gauges(pool)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.debug("mail gauges not refreshed: %s", exc)
            await self._pause(GAUGE_REFRESH_SECONDS)
