"""The tests' app cache (`app_for` in tests/conftest.py): a test that gets an app made for an
earlier test sees it as create_app would make it, nothing of the earlier test's left."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx

from service.security.caller_listener import CALLER_LISTENER_KEY
from service.security.rate_limit import CLOCK_KEY
from service.settings import Settings
from tests.conftest import app_for, bearer, caught_up, make_settings, make_user, running


async def _spend(settings: Settings, headers: dict[str, str], requests: int) -> tuple[list[int], int, int]:
    """The statuses of `requests` GETs of /me, and the caller cache's size before and after them."""
    app = app_for(settings)
    async with running(app):
        await caught_up(app)
        cache = app.state[CALLER_LISTENER_KEY].cache
        before = len(cache)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            statuses = [
                (await http.get("/api/auth/me", headers=headers)).status_code for _ in range(requests)
            ]
        return statuses, before, len(cache)


async def test_a_reused_app_starts_with_nothing_of_the_last_test(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, tmp_path, RATE_LIMIT_PER_MINUTE="3")
    headers = bearer(settings, await make_user(db))
    first = app_for(settings)
    statuses, _, cached = await _spend(settings, headers, 4)
    assert statuses == [200, 200, 200, 429]
    assert cached > 0, "the caller was cached"
    first.state[CLOCK_KEY] = lambda: 0.0  # something a test left in the state

    again = app_for(make_settings(database_url, tmp_path / "elsewhere", RATE_LIMIT_PER_MINUTE="3"))
    assert again is first, "equal settings (but the data directory) reuse the app"
    assert CLOCK_KEY not in again.state
    statuses, cold, _ = await _spend(settings, headers, 3)
    assert statuses == [200, 200, 200], "a new budget"
    assert cold == 0, "a cold caller cache"

    other = app_for(make_settings(database_url, tmp_path, RATE_LIMIT_PER_MINUTE="4"))
    assert other is not first, "other settings, another app"


async def test_an_app_in_use_is_not_handed_out_twice(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, tmp_path, RATE_LIMIT_PER_MINUTE="7")
    async with running(app_for(settings)) as outer:
        inner = app_for(settings)
        assert inner is not outer
