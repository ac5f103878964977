"""Helpers for the auth routes: register and log in through the API, as a frontend does; and
for the races: wait until a statement of the app waits on a row lock a test holds."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

STRONG_PASSWORD = "correct horse battery staple"
OTHER_STRONG_PASSWORD = "plum orchard at midnight 42"


async def register(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = STRONG_PASSWORD
) -> httpx.Response:
    return await client.post("/api/auth/register", json={"email": email, "password": password})


async def login(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = STRONG_PASSWORD
) -> httpx.Response:
    """The OAuth2 password form, as seed 004's curl sends it."""
    return await client.post("/api/auth/login", data={"username": email, "password": password})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def tokens(client: httpx.AsyncClient) -> dict[str, str]:
    """A registered user's first session: access_token, refresh_token, ..."""
    assert (await register(client)).status_code == 201
    response = await login(client)
    assert response.status_code == 200
    body: dict[str, str] = response.json()
    return body


async def waiting_on_a_lock(db: asyncpg.Connection, fragment: str) -> None:
    """Until a server process of this database waits on a lock in a statement containing
    `fragment` (pg_stat_activity keeps the first kilobyte of a statement); AssertionError after
    20 s, so a race test fails rather than hangs when the app never comes to wait."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND position($1 IN query) > 0",
            fragment,
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no statement with {fragment!r} came to wait on a lock")
