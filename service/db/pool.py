"""The connection pool: asyncpg with msgspec JSON codecs, first come first served, transactions
that run again after a deadlock, and the database URL (or the embedded server) it connects to."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import msgspec

from service.compat.asyncpg import (
    AcquireHookPool,
    fill_floor_in_background,
    hooked_acquire_code,
    quiet_floor_retries,
)
from service.db import embedded as embedded_server
from service.db.embedded import EmbeddedPostgres
from service.settings import Settings, SettingsError

log = logging.getLogger("service.db")

R = TypeVar("R")

# PostgreSQL aborted the transaction to break a deadlock or a serialization conflict: nothing of
# it was committed, so it can run again from the start.
RETRYABLE_ERRORS = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
TRANSACTION_ATTEMPTS = 3
# Establishing one connection (TCP, TLS, authentication), for the pool and for start-up checks.
CONNECT_TIMEOUT_SECONDS = 10
# The longest a request waits for a pooled connection (queueing behind others, and opening one):
# then PoolTimeout, which the API answers with 503 and Retry-After (service/http/errors.py).
POOL_ACQUIRE_TIMEOUT_SECONDS = 10
# At shutdown, after the requests in flight: connections still not returned are then cut.
POOL_CLOSE_TIMEOUT_SECONDS = 5


_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + _json_encoder.encode(value)


def _decode_jsonb(data: bytes) -> Any:
    return _json_decoder.decode(data[1:])


def _encode_json(value: Any) -> bytes:
    return _json_encoder.encode(value)


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_encode_jsonb, decoder=_decode_jsonb, format="binary"
    )
    await connection.set_type_codec(
        "json", schema="pg_catalog", encoder=_encode_json, decoder=_json_decoder.decode, format="binary"
    )


async def _no_session_reset(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release `RESET ALL; UNLISTEN *; ...` round trip.

    The service keeps no session state (no SET, LISTEN, temp tables or session advisory locks;
    all are also unusable behind a transaction pooler), and asyncpg still rolls back a
    transaction left open. Measured: about 9 % of CPU on the task list under load.
    """


class DatabaseOutage:
    """Logs a database outage once per worker: a warning at its first failed request, an info line
    with the count of failed requests when the database answers again (a connection comes back
    from a query healthy, at least QUIET_SECONDS after the last failure, so an overloaded pool
    whose acquires time out reads as one outage rather than a line per request)."""

    QUIET_SECONDS = 1.0

    def __init__(self) -> None:
        self.failed_requests = 0
        self._last_failure = 0.0
        self._started = 0.0

    @property
    def ongoing(self) -> bool:
        return self.failed_requests > 0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if not self.ongoing:
            self._started = now
            log.warning(
                "database unavailable: %s: %s (requests answer 503 until it is back; logged once)",
                type(exc).__name__,
                exc,
            )
        self.failed_requests += 1
        self._last_failure = now

    def answered(self) -> None:
        if not self.ongoing:
            return
        now = time.monotonic()
        if now - self._last_failure < self.QUIET_SECONDS:
            return
        log.info(
            "database available again after %.1f s; %d requests failed meanwhile",
            self._last_failure - self._started,
            self.failed_requests,
        )
        self.failed_requests = 0


outage = DatabaseOutage()


# As imported and as resolved: a code object's file name is the path it was imported by.
_DRIVER_DIR = tuple({str(Path(asyncpg.__file__).parent), str(Path(asyncpg.__file__).resolve().parent)})


def raised_by_database(exc: BaseException) -> bool:
    """Whether an OSError or TimeoutError came out of the database driver or this module's pool
    (a refused connection, a pool or command timeout), here or in the error it was raised from,
    rather than out of some other code, where it is a bug or another dependency's failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback = current.__traceback__
        while traceback is not None:
            code = traceback.tb_frame.f_code
            if code.co_filename.startswith(_DRIVER_DIR) or code in _POOL_WAITS:
                return True
            traceback = traceback.tb_next
        current = current.__cause__ or current.__context__
    return False


class FifoGate:
    """A counting semaphore that serves waiters strictly first come, first served.

    A released slot is handed to the oldest waiter directly; a newcomer never takes it first.
    """

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_acquire(self) -> bool:
        """A slot now if one is free and nobody waits for it, else False (nothing taken)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot, then cancelled before using it: pass it on
            else:
                waiter.cancel()
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class PoolTimeout(TimeoutError):
    """No pooled connection could be had within the acquisition deadline."""


class FairPool(AcquireHookPool):
    """asyncpg's pool, with connections handed out in the order they were asked for.

    asyncpg waits for a free connection on an asyncio.Queue, which wakes the oldest waiter on a
    release but lets any task that asks before it runs take the connection; the woken waiter then
    queues again at the back. Under load (64 or 1000 connections on a pool of 10) some requests
    lost that race again and again: a task-list p99 of 200-500 ms at a p50 of 20 ms. A FIFO gate
    with one slot per pooled connection in front of asyncpg's queue means asyncpg's own queue
    never has to wait, and every request waits its turn.

    The gate sits in the hooks service/compat/asyncpg.py puts around asyncpg's one internal
    acquire path, and in `release()`. Should a later asyncpg route around it, requests would
    simply stop being ordered; tests/compat/test_asyncpg.py and tests/foundation/test_fair_pool.py
    fail then.
    """

    def __init__(self, *args: Any, max_size: int, **kwargs: Any) -> None:
        super().__init__(*args, max_size=max_size, **kwargs)
        self._gate = FifoGate(max_size)
        # The connections handed out, each holding one slot of the gate until released. Kept
        # here rather than read off the connection: when a connection breaks (the database
        # restarts), asyncpg detaches it at once, before the holder's `release()` comes.
        self._slots: dict[int, Any] = {}

    async def before_acquire(self, timeout: float | None) -> float | None:  # noqa: ASYNC109
        # Every wait has a deadline: without one, a request would queue for as long as the pool
        # stays busy or the database does not answer a connection attempt.
        if timeout is None:
            timeout = POOL_ACQUIRE_TIMEOUT_SECONDS
        # The gate's wait counts against the caller's timeout, as asyncpg's own wait does.
        gate = self._gate
        if gate.try_acquire():  # a free slot and nobody before us: no wait, no timer
            return timeout
        started = asyncio.get_running_loop().time()
        try:
            # asyncio.timeout on this task rather than wait_for, which wraps the wait in a task of
            # its own (wait_for, its task and its timer were 3.4 % of a task list's samples, py-spy).
            async with asyncio.timeout(timeout):
                await gate.acquire()
        except TimeoutError:
            raise PoolTimeout(f"no database connection was free within {timeout:g} s") from None
        return max(0.0, timeout - (asyncio.get_running_loop().time() - started))

    def acquire_failed(self, exc: BaseException) -> BaseException | None:
        self._gate.release()
        if isinstance(exc, TimeoutError) and not isinstance(exc, PoolTimeout):
            return PoolTimeout("no database connection could be had within the acquisition deadline")
        return None

    def acquired(self, connection: Any) -> None:
        self._slots[id(connection)] = connection

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        holds_slot = self._slots.pop(id(connection), None) is connection
        try:
            if outage.ongoing and holds_slot and _still_open(connection):
                outage.answered()
            await super().release(connection, timeout=timeout)
        finally:
            # Not for a second release or a connection of another pool: no slot was theirs.
            if holds_slot:
                self._gate.release()


def _still_open(connection: Any) -> bool:
    """Whether a held connection survived its request. asyncpg detaches the proxy of a connection
    that broke while held (a database restart), and then every method of it raises."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:
        return False


# Where a wait for a pooled connection runs (and times out) in this module.
_POOL_WAITS = frozenset({hooked_acquire_code(), FairPool.before_acquire.__code__, FifoGate.acquire.__code__})


async def create_pool(
    settings: Settings, url: str, connection_class: type[asyncpg.Connection] = asyncpg.Connection
) -> asyncpg.Pool:
    """One pool per worker. Behind a transaction pooler, no statement may outlive its transaction.

    The pool starts empty and never touches the database here: asyncpg opens the
    DATABASE_POOL_MIN connections in the background (retrying while the database is down) and
    requests open more as they need them. A worker started during a database outage therefore
    starts and answers 503 until the database is back; had start-up needed a connection, the
    worker would fail to start, and uvicorn's supervisor stops the whole host when a restarted
    worker fails to start (docs/reliability.md).

    `connection_class` is service.observability.tracing's traced connection when traces are on."""
    transaction_pooler = settings.database_pooler == "transaction"
    quiet_floor_retries()
    pool = FairPool(
        url,
        min_size=0,
        max_size=settings.database_pool_max,
        max_queries=50_000,
        max_inactive_connection_lifetime=300,
        init=_init_connection,
        reset=_no_session_reset,
        loop=None,
        connection_class=connection_class,
        record_class=asyncpg.Record,
        statement_cache_size=0 if transaction_pooler else 256,
        command_timeout=30,
        timeout=CONNECT_TIMEOUT_SECONDS,
        server_settings={"application_name": "service"},
    )
    await pool
    fill_floor_in_background(pool, settings.database_pool_min)
    return pool


@asynccontextmanager
async def command_pool(settings: Settings, database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of one connection for a command's run (`service prune`, `service mfa-rotate`)."""
    pool = await create_pool(
        msgspec.structs.replace(settings, database_pool_min=1, database_pool_max=1), database_url
    )
    try:
        yield pool
    finally:
        await pool.close()


async def close_pool(pool: asyncpg.Pool) -> None:
    """Close gracefully, but for POOL_CLOSE_TIMEOUT_SECONDS at most (a connection stuck on a
    database that stopped answering would otherwise hold the shutdown forever); then cut."""
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("the pool did not close within %s s; cutting its connections", POOL_CLOSE_TIMEOUT_SECONDS)
        pool.terminate()


async def in_transaction(pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[R]]) -> R:
    """`work(connection)` inside a transaction of its own, run again (up to TRANSACTION_ATTEMPTS
    times, after a short random pause) when PostgreSQL aborts it with a deadlock or a
    serialization failure. The lock order (docs/reliability.md) keeps those rare; this keeps the
    rest from becoming errors. `work` must do nothing but database work: it may run twice."""
    for attempt in range(1, TRANSACTION_ATTEMPTS):
        try:
            async with pool.acquire() as connection, connection.transaction():
                return await work(connection)
        except RETRYABLE_ERRORS as exc:
            log.warning("transaction aborted by %s; running it again", type(exc).__name__)
            await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)
    async with pool.acquire() as connection, connection.transaction():
        return await work(connection)


class DatabaseUnreachable(Exception):
    """The configured database cannot be reached; the message names the variable and why."""


def check_reachable(url: str, variable: str, timeout_seconds: int = CONNECT_TIMEOUT_SECONDS) -> None:
    """Connect once, so that a command started against a database it cannot reach says so in one
    line instead of a driver traceback; raise DatabaseUnreachable."""
    import psycopg

    parts = urlsplit(url)
    try:
        where = f"{parts.hostname or 'local socket'}:{parts.port or 5432}"
    except ValueError:
        where = "an unreadable address"
    try:
        psycopg.connect(url, connect_timeout=timeout_seconds).close()
    except psycopg.Error as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = first_line.rpartition(" failed: ")[2].strip() or first_line
        raise DatabaseUnreachable(f"cannot connect to {variable} ({where}): {reason}") from None


def resolve_database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The DSN to use: DATABASE_URL, or an embedded server started under the data dir."""
    if settings.database_url:
        return settings.database_url, None
    if not embedded_server.installed():
        raise SettingsError(embedded_server.MISSING_MESSAGE)
    embedded = EmbeddedPostgres(Path(settings.data_dir))
    return embedded.start(), embedded
