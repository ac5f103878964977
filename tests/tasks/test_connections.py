"""Whatever way a task request ends, every pooled connection it used goes back to the pool: a
leak would show up as a pool that runs dry and requests that wait, then fail."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
from litestar import Litestar

from service.settings import Settings
from tests.conftest import bearer, make_user
from tests.tasks.conftest import TaskUser, create_task


async def test_every_way_a_task_read_ends_returns_its_connection(
    app: Litestar, client: httpx.AsyncClient, alice: TaskUser, bob: TaskUser, settings: Settings
) -> None:
    task = await create_task(client, alice)
    pool: asyncpg.Pool = app.state.pool
    endings = [
        ("GET", alice.tasks_url, alice.headers, 200),
        ("GET", alice.task_url(task["id"]), alice.headers, 200),
        ("GET", alice.task_url(999_999), alice.headers, 404),  # not found, after the lookup
        ("GET", f"{alice.tasks_url}?limit=0", alice.headers, 400),  # bad parameter, after it
        ("GET", bob.tasks_url, alice.headers, 403),  # someone else's path, after it
        ("DELETE", alice.task_url(999_999), alice.headers, 404),
        ("GET", alice.tasks_url, {"Authorization": "Bearer nope"}, 401),  # before it
    ]
    # Several times the pool's size each, concurrently: a leak of one per request would stall.
    rounds = settings.database_pool_max * 3
    for method, url, headers, status in endings:
        answers = await asyncio.wait_for(
            asyncio.gather(*(client.request(method, url, headers=headers) for _ in range(rounds))), 30
        )
        assert {answer.status_code for answer in answers} == {status}, (method, url)
    assert pool.get_idle_size() == pool.get_size(), "every connection is back in the pool"
    listed = await client.get(alice.tasks_url, headers=alice.headers)
    assert [item["id"] for item in listed.json()] == [task["id"]]


async def test_a_disabled_account_is_refused_and_its_connection_returned(
    app: Litestar, client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
) -> None:
    user_id: uuid.UUID = await make_user(db, "carol@example.com")
    headers = bearer(settings, user_id)
    assert (await client.get(f"/api/{user_id}/tasks", headers=headers)).status_code == 200
    await db.execute("UPDATE users SET is_active = false WHERE id = $1", user_id)
    for _ in range(settings.database_pool_max * 2):
        refused = await client.get(f"/api/{user_id}/tasks", headers=headers)
        assert refused.status_code == 401
    pool: asyncpg.Pool = app.state.pool
    assert pool.get_idle_size() == pool.get_size()
