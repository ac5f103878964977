"""The list: the caller's tasks only, newest first in a stable order, filtered and paged."""

import uuid
from datetime import UTC, datetime

import asyncpg
import httpx

from tests.tasks.conftest import TaskUser, create_task


async def _insert_tasks(
    db: asyncpg.Connection, user_id: uuid.UUID, count: int, created_at: datetime, completed: bool = False
) -> list[int]:
    """Tasks sharing one creation instant, so only the id can order them."""
    rows = await db.fetch(
        "INSERT INTO tasks (user_id, title, is_completed, created_at, updated_at) "
        "SELECT $1, 'task ' || n, $3, $4, $4 FROM generate_series(1, $2) AS n RETURNING id",
        user_id,
        count,
        completed,
        created_at,
    )
    return [row["id"] for row in rows]


async def test_a_new_user_has_an_empty_array(client: httpx.AsyncClient, alice: TaskUser) -> None:
    response = await client.get(alice.tasks_url, headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["x-total-count"] == "0"
    assert "link" not in response.headers


async def test_the_list_is_a_bare_array_of_own_tasks_newest_first(
    client: httpx.AsyncClient, alice: TaskUser, bob: TaskUser
) -> None:
    first = await create_task(client, alice, title="first")
    await create_task(client, bob, title="bob's")
    second = await create_task(client, alice, title="second")
    third = await create_task(client, alice, title="third")
    response = await client.get(alice.tasks_url, headers=alice.headers)
    assert response.json() == [third, second, first]
    assert response.headers["x-total-count"] == "3"


async def test_equal_creation_times_page_without_repeats_or_gaps(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: TaskUser
) -> None:
    ids = await _insert_tasks(db, alice.id, 7, datetime(2025, 1, 1, tzinfo=UTC))
    seen: list[int] = []
    for offset in range(0, 7, 3):
        page = await client.get(alice.tasks_url, params={"limit": 3, "offset": offset}, headers=alice.headers)
        seen += [task["id"] for task in page.json()]
    assert seen == sorted(ids, reverse=True)


async def test_completed_filter(client: httpx.AsyncClient, alice: TaskUser) -> None:
    open_task = await create_task(client, alice, title="open")
    done = await create_task(client, alice, title="done")
    await client.patch(alice.task_url(done["id"]), json={"is_completed": True}, headers=alice.headers)

    completed = await client.get(alice.tasks_url, params={"completed": "true"}, headers=alice.headers)
    still_open = await client.get(alice.tasks_url, params={"completed": "false"}, headers=alice.headers)
    everything = await client.get(alice.tasks_url, headers=alice.headers)
    assert [task["id"] for task in completed.json()] == [done["id"]]
    assert [task["id"] for task in still_open.json()] == [open_task["id"]]
    assert [task["id"] for task in everything.json()] == [done["id"], open_task["id"]]
    assert completed.headers["x-total-count"] == still_open.headers["x-total-count"] == "1"
    as_digit = await client.get(alice.tasks_url, params={"completed": "1"}, headers=alice.headers)
    assert as_digit.json() == completed.json()
    assert everything.headers["x-total-count"] == "2"


async def test_limit_defaults_to_50_and_pages_are_linked(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: TaskUser
) -> None:
    await _insert_tasks(db, alice.id, 120, datetime(2025, 1, 1, tzinfo=UTC))
    first = await client.get(alice.tasks_url, headers=alice.headers)
    assert len(first.json()) == 50
    assert first.headers["x-total-count"] == "120"
    assert first.headers["link"] == f'<{alice.tasks_url}?limit=50&offset=50>; rel="next"'

    last = await client.get(alice.tasks_url, params={"offset": 100}, headers=alice.headers)
    assert len(last.json()) == 20
    assert "link" not in last.headers

    beyond = await client.get(alice.tasks_url, params={"offset": 500}, headers=alice.headers)
    assert beyond.status_code == 200
    assert beyond.json() == []
    assert beyond.headers["x-total-count"] == "120"


async def test_the_next_link_keeps_the_filter(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: TaskUser
) -> None:
    await _insert_tasks(db, alice.id, 5, datetime(2025, 1, 1, tzinfo=UTC), completed=True)
    await _insert_tasks(db, alice.id, 5, datetime(2025, 1, 2, tzinfo=UTC))
    page = await client.get(
        f"/api/v1/{alice.id}/tasks", params={"completed": "true", "limit": 2}, headers=alice.headers
    )
    assert all(task["is_completed"] for task in page.json())
    link = page.headers["link"]
    assert link == f'</api/v1/{alice.id}/tasks?completed=true&limit=2&offset=2>; rel="next"'
    following = await client.get(link[1 : link.index(">")], headers=alice.headers)
    assert following.status_code == 200
    assert len(following.json()) == 2
    assert all(task["is_completed"] for task in following.json())


async def test_limit_and_offset_bounds_are_inclusive(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: TaskUser
) -> None:
    await _insert_tasks(db, alice.id, 201, datetime(2025, 1, 1, tzinfo=UTC))
    largest = await client.get(alice.tasks_url, params={"limit": 200}, headers=alice.headers)
    smallest = await client.get(
        alice.tasks_url, params={"limit": 1, "offset": 100_000}, headers=alice.headers
    )
    assert len(largest.json()) == 200
    assert smallest.status_code == 200
    assert smallest.json() == []


async def test_out_of_range_or_malformed_query_parameters_are_400(
    client: httpx.AsyncClient, alice: TaskUser
) -> None:
    for name, value in [
        ("limit", "0"),
        ("limit", "-1"),
        ("limit", "201"),
        ("limit", "99999999999999999999999"),
        ("limit", "ten"),
        ("limit", ""),
        ("offset", "-1"),
        ("offset", "100001"),
        ("offset", "99999999999999999999999"),
        ("offset", "1.5"),
        ("completed", "maybe"),
        ("completed", "\u0000"),
    ]:
        response = await client.get(alice.tasks_url, params={name: value}, headers=alice.headers)
        assert response.status_code == 400, (name, value, response.text)
        assert response.json()["errors"][0]["field"] == name
