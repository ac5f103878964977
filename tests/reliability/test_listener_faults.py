"""The caller listener's heartbeat fails while requests wait on it: every one of them is answered.

An authenticated write holds its response until the worker's listener has caught up (one
heartbeat round trip, service/security/caller_listener.py). Here the listener's connection goes
through a proxy on loopback (tests/reliability/listener_proxy.py) that holds the answer of the
heartbeat those requests wait for, and then either cuts the connection (it dies mid-heartbeat) or
keeps holding (a heartbeat slower than the bound). Each write must be answered within
CATCH_UP_SECONDS (docs/reliability.md, "Every wait has a deadline"), and the cache must stop
answering meanwhile and come back once the listener has reconnected.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.security.caller_cache import CallerCache
from service.security.caller_listener import CALLER_LISTENER_KEY, CATCH_UP_SECONDS, CallerListener
from tests.conftest import bearer, make_settings, make_user, running
from tests.reliability.listener_proxy import ListenerProxy

WRITERS = 8
# Scheduling on a loaded two-core machine, added to the documented bound; not a measurement.
MARGIN_SECONDS = 1.5
# A test that fails must fail, not hang (the old code left these requests waiting forever).
TEST_DEADLINE_SECONDS = 30


@pytest.fixture
async def proxied_app(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> AsyncIterator[tuple[Litestar, ListenerProxy]]:
    async with ListenerProxy(database_url) as proxy:
        settings = make_settings(database_url, tmp_path, DATABASE_LISTEN_URL=proxy.url)
        async with running(create_app(settings)) as app:
            yield app, proxy


def _listener(app: Litestar) -> CallerListener:
    listener: CallerListener = app.state[CALLER_LISTENER_KEY]
    return listener


async def _timed_writes(
    app: Litestar, headers: dict[str, str], user_id: uuid.UUID
) -> list[tuple[int, float]]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

        async def write(number: int) -> tuple[int, float]:
            started = time.monotonic()
            response = await http.post(
                f"/api/{user_id}/tasks", json={"title": f"write {number}"}, headers=headers
            )
            return response.status_code, time.monotonic() - started

        return await asyncio.gather(*(write(number) for number in range(WRITERS)))


async def _trusted_again(listener: CallerListener) -> None:
    while not listener.cache.trusted():
        await asyncio.sleep(0.05)


async def _run_fault(
    app: Litestar, proxy: ListenerProxy, db: asyncpg.Connection, *, cut_after: float | None
) -> None:
    listener = _listener(app)
    settings = app.state["settings"]
    user_id = await make_user(db)
    headers = bearer(settings, user_id)
    assert listener.cache.trusted(), "the listener was up before the fault"

    # The heartbeat just answered passes; the next one, which the writes below wake at once,
    # is held by the proxy with every write waiting on it.
    await proxy.freeze_after_next_answer()
    writes = asyncio.create_task(_timed_writes(app, headers, user_id))
    if cut_after is not None:
        await asyncio.sleep(cut_after)
        assert not writes.done(), "the writes wait for the held heartbeat"
        proxy.cut()
    answers = await asyncio.wait_for(writes, TEST_DEADLINE_SECONDS)

    assert [status for status, _ in answers] == [201] * WRITERS
    slowest = max(elapsed for _, elapsed in answers)
    assert slowest < CATCH_UP_SECONDS + MARGIN_SECONDS, f"a write waited {slowest:.2f} s"
    stored = await db.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", user_id)
    assert stored == WRITERS
    # The listener reconnects through the proxy (new connections pass) and trusts again.
    await asyncio.wait_for(_trusted_again(listener), TEST_DEADLINE_SECONDS)


async def test_writes_waiting_on_a_heartbeat_whose_connection_dies_are_answered(
    proxied_app: tuple[Litestar, ListenerProxy], db: asyncpg.Connection
) -> None:
    app, proxy = proxied_app
    await _run_fault(app, proxy, db, cut_after=0.5)


async def test_writes_waiting_on_a_heartbeat_slower_than_the_bound_are_answered(
    proxied_app: tuple[Litestar, ListenerProxy], db: asyncpg.Connection
) -> None:
    app, proxy = proxied_app
    await _run_fault(app, proxy, db, cut_after=None)


async def test_catching_up_gives_up_at_its_deadline_and_distrusts_the_cache() -> None:
    """A listener that never answers (here: none runs at all) holds a request CATCH_UP_SECONDS at
    most; the cache then stops answering, so that request's next read goes to the database."""
    cache = CallerCache(10)
    cache.trust_until(time.monotonic() + 60)
    listener = CallerListener(cache)
    started = time.monotonic()
    await asyncio.wait_for(listener.caught_up(), TEST_DEADLINE_SECONDS)
    assert CATCH_UP_SECONDS <= time.monotonic() - started < CATCH_UP_SECONDS + MARGIN_SECONDS
    assert not cache.trusted()
