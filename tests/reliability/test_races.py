"""Concurrent requests for one thing, against a real server with two worker processes.

Two workers make the races real: requests run truly in parallel, each worker with its own pool,
and only PostgreSQL decides who wins. tests/accounts/test_refresh.py races two refreshes in
process; this races many over HTTP.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.accounts.conftest import STRONG_PASSWORD
from tests.reliability.conftest import live_service

RACERS = 12


@pytest.fixture(scope="module")
def base_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with live_service(database_url, tmp_path_factory.mktemp("races"), WEB_CONCURRENCY="2") as (_, base):
        yield base


@pytest.fixture
async def http(base_url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=RACERS * 2)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        yield client


async def _signed_in(http: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    email = f"racer-{uuid.uuid4().hex[:8]}@example.com"
    registered = await http.post("/api/auth/register", json={"email": email, "password": STRONG_PASSWORD})
    login = await http.post("/api/auth/login", data={"username": email, "password": STRONG_PASSWORD})
    return registered.json()["id"], {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_concurrent_registrations_of_one_email_create_one_account(
    http: httpx.AsyncClient, database_url: str
) -> None:
    email = f"same-{uuid.uuid4().hex[:8]}@example.com"
    spellings = [email, email.upper(), email.title()]
    answers = await asyncio.gather(
        *(
            http.post("/api/auth/register", json={"email": spellings[n % 3], "password": STRONG_PASSWORD})
            for n in range(RACERS)
        )
    )
    assert Counter(answer.status_code for answer in answers) == {201: 1, 409: RACERS - 1}
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM users WHERE lower(email) = $1", email) == 1
    finally:
        await connection.close()


async def test_concurrent_refreshes_of_one_token_succeed_once(http: httpx.AsyncClient) -> None:
    email = f"refresh-{uuid.uuid4().hex[:8]}@example.com"
    await http.post("/api/auth/register", json={"email": email, "password": STRONG_PASSWORD})
    login = await http.post("/api/auth/login", data={"username": email, "password": STRONG_PASSWORD})
    token = login.json()["refresh_token"]
    answers = await asyncio.gather(
        *(http.post("/api/auth/refresh", json={"refresh_token": token}) for _ in range(RACERS))
    )
    assert Counter(answer.status_code for answer in answers) == {200: 1, 401: RACERS - 1}


async def test_concurrent_patches_and_deletes_of_one_task(http: httpx.AsyncClient) -> None:
    user_id, headers = await _signed_in(http)
    tasks_url = f"/api/{user_id}/tasks"
    for _ in range(5):
        created = await http.post(tasks_url, json={"title": "original"}, headers=headers)
        task_url = f"{tasks_url}/{created.json()['id']}"
        patches = [{"title": f"title {n}"} for n in range(4)] + [{"is_completed": True}, {"description": "d"}]
        answers = await asyncio.gather(
            *(http.patch(task_url, json=patch, headers=headers) for patch in patches),
            http.delete(task_url, headers=headers),
            http.delete(task_url, headers=headers),
        )
        patched, deleted = answers[: len(patches)], answers[len(patches) :]
        assert sorted(answer.status_code for answer in deleted) == [204, 404]
        for answer in patched:
            assert answer.status_code in (200, 404), answer.text
            if answer.status_code == 200:
                assert answer.json()["title"] in {"original", *(f"title {n}" for n in range(4))}
        assert (await http.get(task_url, headers=headers)).status_code == 404


async def test_concurrent_patches_of_different_fields_lose_none(http: httpx.AsyncClient) -> None:
    user_id, headers = await _signed_in(http)
    tasks_url = f"/api/{user_id}/tasks"
    for _ in range(5):
        created = await http.post(tasks_url, json={"title": "original"}, headers=headers)
        task_url = f"{tasks_url}/{created.json()['id']}"
        titles = [f"title {n}" for n in range(4)]
        answers = await asyncio.gather(
            *(http.patch(task_url, json={"title": title}, headers=headers) for title in titles),
            http.patch(task_url, json={"is_completed": True}, headers=headers),
            http.patch(task_url, json={"description": "described"}, headers=headers),
        )
        assert {answer.status_code for answer in answers} == {200}
        final = (await http.get(task_url, headers=headers)).json()
        assert final["title"] in titles
        assert (final["is_completed"], final["description"]) == (True, "described")
