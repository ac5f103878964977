"""Bad input is a 400 problem (or 404 for a path that names no task), never a 500 and never stored.

Each test walks a table of cases in one app, so the suite stays fast; the failing case is named
in the assertion message."""

from typing import Any

import httpx

from tests.tasks.conftest import TaskUser, create_task

INVALID_CREATE_BODIES: list[tuple[dict[str, Any], str]] = [
    ({}, "title"),
    ({"description": "no title"}, "title"),
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "\t\n"}, "title"),
    ({"title": None}, "title"),
    ({"title": 42}, "title"),
    ({"title": ["a"]}, "title"),
    ({"title": "ok", "description": 5}, "description"),
    ({"title": "ok", "description": "x" * 10_001}, "description"),
    ({"title": "ok", "is_completed": "no"}, "is_completed"),
    ({"title": "ok", "is_completed": None}, "is_completed"),
    ({"title": "ok", "user_id": "someone-else"}, "user_id"),
    ({"title": "ok", "id": 1}, "id"),
    ({"title": "ok", "completed": True}, "completed"),
]

INVALID_PATCH_BODIES: list[tuple[dict[str, Any], str]] = [
    ({}, "at least one"),
    ({"title": None}, "title"),
    ({"is_completed": None}, "is_completed"),
    ({"is_completed": "yes"}, "is_completed"),
    ({"title": ""}, "title"),
    ({"title": " "}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"description": 1}, "description"),
    ({"completed": True}, "completed"),
    ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
]

NOT_A_JSON_OBJECT = [b"{not json", b"null", b"[]", b'"title"', b'{"title": "\\ud800"}', b"", b"\xff\xfe"]


async def test_create_rejects_invalid_bodies(client: httpx.AsyncClient, alice: TaskUser) -> None:
    for body, mentioned in INVALID_CREATE_BODIES:
        response = await client.post(alice.tasks_url, json=body, headers=alice.headers)
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert mentioned in response.json()["detail"], (body, response.text)
    listed = await client.get(alice.tasks_url, headers=alice.headers)
    assert listed.json() == []


async def test_patch_rejects_invalid_bodies_and_changes_nothing(
    client: httpx.AsyncClient, alice: TaskUser
) -> None:
    created = await create_task(client, alice, description="before")
    for body, mentioned in INVALID_PATCH_BODIES:
        response = await client.patch(alice.task_url(created["id"]), json=body, headers=alice.headers)
        assert response.status_code == 400, (body, response.text)
        assert mentioned in response.json()["detail"], (body, response.text)
    unchanged = await client.get(alice.task_url(created["id"]), headers=alice.headers)
    assert unchanged.json() == created


async def test_title_limits_are_inclusive(client: httpx.AsyncClient, alice: TaskUser) -> None:
    shortest = await create_task(client, alice, title="x")
    longest = await create_task(client, alice, title="é" * 200)
    assert shortest["title"] == "x"
    assert longest["title"] == "é" * 200


async def test_title_is_stored_as_sent(client: httpx.AsyncClient, alice: TaskUser) -> None:
    task = await create_task(client, alice, title="  Call mum  ")
    assert task["title"] == "  Call mum  "


async def test_nul_characters_are_400_and_never_stored(client: httpx.AsyncClient, alice: TaskUser) -> None:
    created = await create_task(client, alice, description="before")
    for body in ({"title": "nul\u0000byte"}, {"title": "\u0000"}, {"description": "a\u0000"}):
        on_create = await client.post(alice.tasks_url, json={"title": "ok", **body}, headers=alice.headers)
        on_patch = await client.patch(alice.task_url(created["id"]), json=body, headers=alice.headers)
        assert (on_create.status_code, on_patch.status_code) == (400, 400), body
    listed = await client.get(alice.tasks_url, headers=alice.headers)
    assert listed.json() == [created]


async def test_bodies_that_are_not_a_json_object_are_400(client: httpx.AsyncClient, alice: TaskUser) -> None:
    task = await create_task(client, alice)
    headers = {**alice.headers, "Content-Type": "application/json"}
    for raw in NOT_A_JSON_OBJECT:
        created = await client.post(alice.tasks_url, content=raw, headers=headers)
        patched = await client.patch(alice.task_url(task["id"]), content=raw, headers=headers)
        assert (created.status_code, patched.status_code) == (400, 400), raw


async def test_task_ids_outside_bigint_are_400(client: httpx.AsyncClient, alice: TaskUser) -> None:
    for task_id in ("0", "-1", "9223372036854775808", "99999999999999999999999"):
        for method in ("GET", "PATCH", "DELETE"):
            body = {"title": "x"} if method == "PATCH" else None
            response = await client.request(method, alice.task_url(task_id), json=body, headers=alice.headers)
            assert response.status_code == 400, (method, task_id, response.text)
            assert response.json()["errors"][0]["field"] == "task_id"


async def test_the_largest_bigint_task_id_is_simply_absent(
    client: httpx.AsyncClient, alice: TaskUser
) -> None:
    response = await client.get(alice.task_url(2**63 - 1), headers=alice.headers)
    assert response.status_code == 404


async def test_task_ids_that_are_not_integers_name_no_resource(
    client: httpx.AsyncClient, alice: TaskUser
) -> None:
    for task_id in ("abc", "1.5", "1e3", "%00", "0x10", "\uff11"):
        for method in ("GET", "PATCH", "DELETE"):
            body = {"title": "x"} if method == "PATCH" else None
            response = await client.request(method, alice.task_url(task_id), json=body, headers=alice.headers)
            assert response.status_code in (400, 404), (method, task_id, response.text)
            assert response.headers["content-type"] == "application/problem+json"
