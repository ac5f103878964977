"""The caller cache in one worker: it serves warm callers from memory, forgets what PostgreSQL
announces, never stores a row an announcement overtook, and steps aside while its listener is
down. Real PostgreSQL, real LISTEN connection; the multi-process cases are in
tests/scale/test_caller_cache.py."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from litestar import Litestar

from service.accounts.queries import GET_CALLER
from service.app import create_app
from service.db import migrations
from service.db.embedded import EmbeddedPostgres
from service.security.auth import CALLER_CACHE_KEY
from service.security.caller_cache import CachedUser, CallerCache
from service.security.caller_listener import CALLER_LISTENER_KEY, CallerListener
from service.settings import Settings
from tests.conftest import bearer, caught_up, make_settings, make_user, running

DEADLINE_SECONDS = 30  # a deadline for a reconnect, not a measurement


def _cache(app: Litestar) -> CallerCache:
    cache: CallerCache = app.state[CALLER_CACHE_KEY]
    return cache


def _listener(app: Litestar) -> CallerListener:
    listener: CallerListener = app.state[CALLER_LISTENER_KEY]
    return listener


async def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {DEADLINE_SECONDS} s: {what}"
        await asyncio.sleep(0.02)


async def test_a_warm_caller_is_served_from_the_cache(
    client: httpx.AsyncClient, app: Litestar, db: asyncpg.Connection, settings: Settings
) -> None:
    user_id = await make_user(db)
    headers = bearer(settings, user_id)
    cache = _cache(app)
    assert cache.trusted(), "the listener is up once the app has started"

    assert (await client.get(f"/api/{user_id}/tasks", headers=headers)).status_code == 200
    cache.drain_counts()
    for _ in range(5):
        assert (await client.get(f"/api/{user_id}/tasks", headers=headers)).status_code == 200
    assert cache.drain_counts() == (5, 0)


async def test_a_fill_overtaken_by_an_announcement_is_not_stored(
    client: httpx.AsyncClient, app: Litestar, db: asyncpg.Connection, settings: Settings
) -> None:
    """The race, step by step: a fill reads the user, a change commits and is announced before
    the fill stores what it read. The stale row must not be stored."""
    user_id = await make_user(db)
    cache = _cache(app)

    ticket = cache.ticket()
    stale = await db.fetchrow(GET_CALLER, user_id, None)
    await db.execute("UPDATE users SET role = 'admin' WHERE id = $1", user_id)
    await caught_up(app)
    cache.store_user(ticket, CachedUser.of(stale))
    assert cache.user(user_id) is None, "the row read before the change was stored"

    fresh_ticket = cache.ticket()
    fresh = await db.fetchrow(GET_CALLER, user_id, None)
    cache.store_user(fresh_ticket, CachedUser.of(fresh))
    assert cache.user(user_id) == CachedUser.of(fresh), "a fill no announcement overtook is stored"

    # And through the API: the promotion is seen on the next request.
    me = await client.get("/api/users", headers=bearer(settings, user_id))
    assert me.status_code == 200, "the new admin may list users"


async def test_an_announced_change_reaches_the_cached_caller(
    client: httpx.AsyncClient, app: Litestar, db: asyncpg.Connection, settings: Settings
) -> None:
    user_id = await make_user(db)
    headers = bearer(settings, user_id)
    assert (await client.get(f"/api/{user_id}/tasks", headers=headers)).status_code == 200
    assert _cache(app).user(user_id) is not None

    await db.execute("UPDATE users SET is_active = false WHERE id = $1", user_id)
    assert (await client.get(f"/api/{user_id}/tasks", headers=headers)).status_code == 401
    await db.execute("UPDATE users SET is_active = true WHERE id = $1", user_id)
    assert (await client.get(f"/api/{user_id}/tasks", headers=headers)).status_code == 200


async def test_a_terminated_listener_empties_the_cache_and_comes_back(
    client: httpx.AsyncClient, app: Litestar, db: asyncpg.Connection, settings: Settings
) -> None:
    user_id = await make_user(db)
    token = bearer(settings, user_id)
    assert (await client.get(f"/api/{user_id}/tasks", headers=token)).status_code == 200
    cache, listener = _cache(app), _listener(app)
    assert listener.connection is not None
    listener_pid = listener.connection.get_server_pid()

    await db.execute("SELECT pg_terminate_backend($1)", listener_pid)
    await _until(lambda: not cache.trusted() or listener.connection is None, "the listener saw its end")
    # Made while the listener is down (or reconnecting): no announcement reaches this worker.
    await db.execute("UPDATE users SET tokens_valid_after = now() WHERE id = $1", user_id)
    assert (await client.get(f"/api/{user_id}/tasks", headers=token)).status_code == 401

    await _until(
        lambda: cache.trusted() and listener.connection is not None and not listener.connection.is_closed(),
        "the listener reconnected",
    )
    assert listener.connection is not None
    assert listener.connection.get_server_pid() != listener_pid
    fresh = bearer(settings, user_id)
    assert (await client.get(f"/api/{user_id}/tasks", headers=fresh)).status_code == 200
    cache.drain_counts()
    assert (await client.get(f"/api/{user_id}/tasks", headers=fresh)).status_code == 200
    assert cache.drain_counts() == (1, 0), "the cache serves again"


async def test_a_listener_that_stops_answering_loses_trust_within_the_window(
    client: httpx.AsyncClient, app: Litestar, db: asyncpg.Connection, settings: Settings
) -> None:
    """The connection stays open but its backend stops answering (SIGSTOP, as a hung server or a
    silently cut network would): the cache stops answering once the trust window runs out."""
    user_id = await make_user(db)
    token = bearer(settings, user_id)
    assert (await client.get(f"/api/{user_id}/tasks", headers=token)).status_code == 200
    cache, listener = _cache(app), _listener(app)
    assert listener.connection is not None
    backend = listener.connection.get_server_pid()
    os.kill(backend, signal.SIGSTOP)
    try:
        await _until(lambda: not cache.trusted(), "the cache stopped trusting a silent listener")
        await db.execute("UPDATE users SET is_active = false WHERE id = $1", user_id)
        assert (await client.get(f"/api/{user_id}/tasks", headers=token)).status_code == 401
    finally:
        os.kill(backend, signal.SIGCONT)
    await _until(cache.trusted, "the listener is back")
    await db.execute("UPDATE users SET is_active = true WHERE id = $1", user_id)
    assert (await client.get(f"/api/{user_id}/tasks", headers=bearer(settings, user_id))).status_code == 200


async def test_a_database_restart_empties_the_cache_and_it_comes_back(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "db")
    url = server.start()
    try:
        migrations.apply_pending(url)
        connection = await asyncpg.connect(url)
        user_id: uuid.UUID = await connection.fetchval(
            "INSERT INTO users (email) VALUES ('restart@example.com') RETURNING id"
        )
        await connection.close()
        settings = make_settings(url, tmp_path)
        app = create_app(settings)
        async with running(app):
            cache = _cache(app)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                token = bearer(settings, user_id)
                assert (await http.get(f"/api/{user_id}/tasks", headers=token)).status_code == 200
                assert cache.user(user_id) is not None

                await asyncio.to_thread(server.stop)
                await _until(lambda: not cache.trusted(), "the cache stepped aside")
                assert len(cache) == 0
                assert await asyncio.to_thread(server.start) == url
                connection = await asyncpg.connect(url)
                await connection.execute("UPDATE users SET is_active = false WHERE id = $1", user_id)
                await connection.close()

                async def refused() -> bool:
                    response = await http.get(f"/api/{user_id}/tasks", headers=token)
                    assert response.status_code in (401, 503), response.text
                    return response.status_code == 401

                deadline = time.monotonic() + DEADLINE_SECONDS
                while not await refused():
                    assert time.monotonic() < deadline, "the deactivation was never seen"
                    await asyncio.sleep(0.05)
                await _until(cache.trusted, "the listener is back after the restart")
    finally:
        server.stop()


def test_the_lru_keeps_its_bound() -> None:
    cache = CallerCache(capacity=3)
    cache.trust_until(time.monotonic() + 60)
    users = [
        CachedUser(
            id=uuid.uuid4(), email=None, role="user", provider="local", is_active=True, tokens_valid_after=0.0
        )
        for _ in range(5)
    ]
    for user in users[:3]:
        cache.store_user(cache.ticket(), user)
    assert cache.user(users[0].id) is not None  # now the most recently used
    for user in users[3:]:
        cache.store_user(cache.ticket(), user)
    assert [cache.user(user.id) is not None for user in users] == [True, False, False, True, True]
