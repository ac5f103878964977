"""Create, read, change and delete one task; seed 002's Task shape; PATCH touches only what is sent."""

from datetime import datetime

import asyncpg
import httpx
import pytest

from tests.tasks.conftest import TaskUser, create_task

TASK_FIELDS = {"id", "user_id", "title", "description", "is_completed", "created_at", "updated_at"}


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_create_answers_201_with_seed_002s_task(client: httpx.AsyncClient, alice: TaskUser) -> None:
    response = await client.post(
        alice.tasks_url, json={"title": "Buy milk", "description": "2 litres"}, headers=alice.headers
    )
    assert response.status_code == 201
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert isinstance(task["id"], int)
    assert task["user_id"] == str(alice.id)
    assert (task["title"], task["description"], task["is_completed"]) == ("Buy milk", "2 litres", False)
    assert task["created_at"] == task["updated_at"]
    assert _instant(task["created_at"]).utcoffset() is not None
    assert response.headers["location"] == alice.task_url(task["id"])


async def test_description_is_optional_and_null_when_left_out(
    client: httpx.AsyncClient, alice: TaskUser
) -> None:
    task = await create_task(client, alice, title="Only a title")
    assert task["description"] is None
    explicit = await create_task(client, alice, title="Explicit", description=None)
    assert explicit["description"] is None


async def test_get_returns_what_create_returned(client: httpx.AsyncClient, alice: TaskUser) -> None:
    created = await create_task(client, alice, description="details")
    response = await client.get(alice.task_url(created["id"]), headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == created


async def test_get_of_a_missing_task_is_404(client: httpx.AsyncClient, alice: TaskUser) -> None:
    response = await client.get(alice.task_url(424242), headers=alice.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_patch_changes_only_the_fields_sent(client: httpx.AsyncClient, alice: TaskUser) -> None:
    created = await create_task(client, alice, title="Draft", description="keep me")
    response = await client.patch(
        alice.task_url(created["id"]), json={"title": "Final"}, headers=alice.headers
    )
    assert response.status_code == 200
    task = response.json()
    assert (task["title"], task["description"], task["is_completed"]) == ("Final", "keep me", False)

    completed = await client.patch(
        alice.task_url(created["id"]), json={"is_completed": True}, headers=alice.headers
    )
    assert completed.json()["title"] == "Final"
    assert completed.json()["description"] == "keep me"
    assert completed.json()["is_completed"] is True

    reopened = await client.patch(
        alice.task_url(created["id"]), json={"is_completed": False}, headers=alice.headers
    )
    assert reopened.json()["is_completed"] is False


async def test_patch_with_null_description_clears_it(client: httpx.AsyncClient, alice: TaskUser) -> None:
    created = await create_task(client, alice, description="to be cleared")
    kept = await client.patch(alice.task_url(created["id"]), json={"title": "Renamed"}, headers=alice.headers)
    assert kept.json()["description"] == "to be cleared"
    cleared = await client.patch(
        alice.task_url(created["id"]), json={"description": None}, headers=alice.headers
    )
    assert cleared.status_code == 200
    assert cleared.json()["description"] is None
    assert cleared.json()["title"] == "Renamed"
    fetched = await client.get(alice.task_url(created["id"]), headers=alice.headers)
    assert fetched.json()["description"] is None


async def test_patch_can_set_every_field_at_once(client: httpx.AsyncClient, alice: TaskUser) -> None:
    created = await create_task(client, alice)
    response = await client.patch(
        alice.task_url(created["id"]),
        json={"title": "All", "description": "new", "is_completed": True},
        headers=alice.headers,
    )
    task = response.json()
    assert (task["title"], task["description"], task["is_completed"]) == ("All", "new", True)


async def test_patch_moves_updated_at_but_not_created_at(client: httpx.AsyncClient, alice: TaskUser) -> None:
    created = await create_task(client, alice)
    first = (
        await client.patch(alice.task_url(created["id"]), json={"is_completed": True}, headers=alice.headers)
    ).json()
    second = (
        await client.patch(alice.task_url(created["id"]), json={"is_completed": True}, headers=alice.headers)
    ).json()
    assert first["created_at"] == second["created_at"] == created["created_at"]
    assert _instant(created["updated_at"]) < _instant(first["updated_at"]) < _instant(second["updated_at"])


async def test_patch_of_a_missing_task_is_404(client: httpx.AsyncClient, alice: TaskUser) -> None:
    response = await client.patch(alice.task_url(777), json={"title": "x"}, headers=alice.headers)
    assert response.status_code == 404


async def test_delete_answers_204_and_the_task_is_gone(client: httpx.AsyncClient, alice: TaskUser) -> None:
    kept = await create_task(client, alice, title="Keep")
    doomed = await create_task(client, alice, title="Doomed")
    response = await client.delete(alice.task_url(doomed["id"]), headers=alice.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(alice.task_url(doomed["id"]), headers=alice.headers)).status_code == 404
    again = await client.delete(alice.task_url(doomed["id"]), headers=alice.headers)
    assert again.status_code == 404
    listed = await client.get(alice.tasks_url, headers=alice.headers)
    assert [task["id"] for task in listed.json()] == [kept["id"]]


async def test_deleting_a_user_deletes_their_tasks(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: TaskUser, bob: TaskUser
) -> None:
    await create_task(client, alice)
    await create_task(client, alice)
    bobs = await create_task(client, bob)
    await db.execute("DELETE FROM users WHERE id = $1", alice.id)
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", alice.id) == 0
    assert await db.fetchval("SELECT count(*) FROM tasks") == 1
    gone = await client.get(alice.tasks_url, headers=alice.headers)
    assert gone.status_code == 401
    remaining = await client.get(bob.task_url(bobs["id"]), headers=bob.headers)
    assert remaining.status_code == 200


async def test_seed_002s_index_is_visible(db: asyncpg.Connection) -> None:
    rows = await db.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'")
    assert "idx_tasks_user_id" in {row["indexname"] for row in rows}


@pytest.mark.parametrize("title", ["", "x" * 201])
async def test_the_database_refuses_titles_the_api_refuses(
    db: asyncpg.Connection, alice: TaskUser, title: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO tasks (user_id, title) VALUES ($1, $2)", alice.id, title)


async def test_a_task_can_be_created_already_completed(client: httpx.AsyncClient, alice: TaskUser) -> None:
    task = await create_task(client, alice, title="Done before I wrote it down", is_completed=True)
    assert task["is_completed"] is True
