"""One LISTEN connection per worker, outside the pool, that keeps the caller cache trustworthy.

It listens on the `caller_changes` channel and applies every announcement to the CallerCache.
Every HEARTBEAT_SECONDS it runs a heartbeat query; an answer within TRUST_SECONDS of sending it
extends the cache's trust to that send time + TRUST_SECONDS. A connection that drops (database
restart, `pg_terminate_backend`) empties the cache at once; one that stops answering loses
trust when the window runs out. It then reconnects, with a growing pause, for as long as the
worker runs, and the cache comes back (empty) once a heartbeat is answered again.

`caught_up()` waits until every announcement committed before the call has been applied: a
request that changed something (a logout) awaits it before its response leaves, so the same
worker never serves the caller it just revoked, even for the milliseconds a notification takes.
No such wait is ever left behind: the requests a heartbeat carries are released whether it is
answered, raises or runs past TRUST_SECONDS (the cache is distrusted first, so they then read the
database), and `caught_up()` itself gives up after CATCH_UP_SECONDS, distrusting the cache too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg

from service.security import queries
from service.security.caller_cache import CHANNEL, CallerCache
from service.settings import Settings

HEARTBEAT_SECONDS = 1.0
TRUST_SECONDS = 2.0
# The longest a request waits in `caught_up()`. At the deadline the cache is distrusted (every
# request of this worker reads the database until a heartbeat is answered in time again) and the
# response leaves: the same criterion as a heartbeat slower than TRUST_SECONDS.
CATCH_UP_SECONDS = TRUST_SECONDS
CONNECT_TIMEOUT_SECONDS = 5.0
RECONNECT_PAUSES = (0.1, 0.25, 0.5, 1.0, 2.0)
APPLICATION_NAME = "service-caller-listener"
CALLER_LISTENER_KEY = "caller_listener"

log = logging.getLogger("service.caller_listener")


def listen_url(settings: Settings, database_url: str) -> str | None:
    """Where the LISTEN connection goes: DATABASE_LISTEN_URL, else the database itself unless
    that is a transaction pooler (LISTEN needs a connection of its own); None: cache off."""
    if settings.caller_cache_size == 0:
        return None
    if settings.database_listen_url:
        return settings.database_listen_url
    if settings.database_pooler == "transaction":
        log.warning(
            "caller cache off: DATABASE_POOLER=transaction and no DATABASE_LISTEN_URL; "
            "every request reads its caller from the database"
        )
        return None
    return database_url


class CallerListener:
    def __init__(self, cache: CallerCache) -> None:
        self.cache = cache
        self._task: asyncio.Task[None] | None = None
        self._afresh()

    def reset(self) -> None:
        """A new empty cache of the same capacity and no listening history: the state
        construction gives. Only while stopped: the tests' app cache (tests/conftest.py)
        resets a reused app's listener before each test."""
        if self._task is not None:
            raise RuntimeError("reset a running caller listener")
        self.cache = CallerCache(self.cache.capacity)
        self._afresh()

    def _afresh(self) -> None:
        self._url = ""
        self._wake = asyncio.Event()
        # Requests waiting for a heartbeat sent after they asked (see caught_up).
        self._waiting: list[asyncio.Future[None]] = []
        self._listening = asyncio.Event()  # set while connected and trusted at least once
        self.connection: asyncpg.Connection | None = None

    async def start(self, url: str) -> None:
        """Connect and wait (at most CONNECT_TIMEOUT_SECONDS) for the first heartbeat, so the
        cache serves from the first request; should the database not answer yet, keep trying
        in the background."""
        self._url = url
        self._task = asyncio.create_task(self._run(), name="caller-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), CONNECT_TIMEOUT_SECONDS)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def caught_up(self) -> None:
        """Return once every announcement committed before this call is in the cache (one
        heartbeat round trip, shared by every request waiting at the time), or at once when
        the cache is not trusted, since nothing is then served from it. At most
        CATCH_UP_SECONDS: then the cache is distrusted, which serves the same purpose.

        Read-your-writes: the outermost layer (service.http.middleware, its `hold`) awaits this
        before the response of an authenticated request with an unsafe method starts (it may
        have logged out, changed a password or a role, or deleted an account). Safe methods,
        and requests without credentials (register, login, refresh: none of them changes what
        the cache holds), are not held."""
        if not self.cache.trusted():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self._wake.set()
        try:
            async with asyncio.timeout(CATCH_UP_SECONDS):
                await waiter
        except TimeoutError:
            log.warning(
                "caller cache off: the listener did not catch up within %.0f s; reading callers "
                "from the database until a heartbeat is answered in time",
                CATCH_UP_SECONDS,
            )
            self.cache.distrust()

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._listen()
            except (
                OSError,
                TimeoutError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                # What asyncpg raises when the server ends the session mid-query (a restart): a
                # lost connection like the others, not a bug to log with its traceback.
                asyncpg.exceptions.InternalClientError,
            ) as exc:
                if self._listening.is_set():
                    log.warning("caller cache off: listener connection lost (%s); reconnecting", exc)
            except Exception:  # whatever broke, the cache stays off until the listener is back
                log.exception("caller cache off: listener failed; reconnecting")
            finally:
                self.cache.distrust()
                self._release_waiters()
                await self._close()
            if self._listening.is_set():
                self._listening.clear()
                attempt = 0
            await asyncio.sleep(RECONNECT_PAUSES[min(attempt, len(RECONNECT_PAUSES) - 1)])
            attempt += 1

    async def _listen(self) -> None:
        connection = await asyncpg.connect(
            self._url,
            timeout=CONNECT_TIMEOUT_SECONDS,
            statement_cache_size=0,
            server_settings={"application_name": APPLICATION_NAME},
        )
        self.connection = connection
        lost = asyncio.Event()

        def on_termination(_: Any) -> None:
            self.cache.distrust()  # at once: the next request must not wait for the loop below
            lost.set()
            self._wake.set()

        connection.add_termination_listener(on_termination)
        await connection.add_listener(CHANNEL, self._on_notification)
        while not lost.is_set():
            # The requests waiting now are answered by this heartbeat, however it ends: on any
            # failure (an error, the timeout, cancellation) the cache is distrusted first, so a
            # released request's next read goes to the database.
            waiting, self._waiting = self._waiting, []
            answered = False
            sent = time.monotonic()
            try:
                await asyncio.wait_for(queries.heartbeat(connection), TRUST_SECONDS)
                answered = not lost.is_set()
            finally:
                if answered:
                    self.cache.trust_until(sent + TRUST_SECONDS)
                else:
                    self.cache.distrust()
                _release(waiting)
            if lost.is_set():
                break
            if not self._listening.is_set():
                self._listening.set()
                log.info("caller cache on: listening on %r", CHANNEL)
            self._wake.clear()
            if not self._waiting:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), HEARTBEAT_SECONDS)
        raise asyncpg.InterfaceError("the listener connection was closed")

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.cache.invalidate(payload)

    def _release_waiters(self) -> None:
        waiting, self._waiting = self._waiting, []
        _release(waiting)

    async def _close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()


def _release(waiting: list[asyncio.Future[None]]) -> None:
    for waiter in waiting:
        if not waiter.done():
            waiter.set_result(None)
