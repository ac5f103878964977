"""Seed 002's security checklist: 401 without a valid token, 403 for another user_id in the
path, and nothing of one user's tasks reachable by another, by any method."""

import httpx
import pytest

from tests.tasks.conftest import TaskUser, create_task

# Every task route and method, with a body where the method takes one.
EVERY_OPERATION = pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("POST", "", {"title": "x"}),
        ("GET", "/1", None),
        ("PATCH", "/1", {"title": "x"}),
        ("DELETE", "/1", None),
    ],
)


async def test_list_without_token_is_401(client: httpx.AsyncClient, alice: TaskUser) -> None:
    response = await client.get(alice.tasks_url)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-jwt", "Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer eyJhbGciOiJub25lIn0.e30."],
)
async def test_invalid_token_is_401(client: httpx.AsyncClient, alice: TaskUser, authorization: str) -> None:
    response = await client.get(alice.tasks_url, headers={"Authorization": authorization})
    assert response.status_code == 401


@EVERY_OPERATION
async def test_every_operation_needs_a_token(
    client: httpx.AsyncClient, alice: TaskUser, method: str, path: str, body: dict[str, str] | None
) -> None:
    response = await client.request(method, alice.tasks_url + path, json=body)
    assert response.status_code == 401


async def test_a_token_is_checked_before_the_input(client: httpx.AsyncClient, alice: TaskUser) -> None:
    bad_id = await client.get(alice.task_url(0))
    bad_body = await client.post(
        alice.tasks_url, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (bad_id.status_code, bad_body.status_code) == (401, 401)


async def test_create_with_a_valid_token_is_201(client: httpx.AsyncClient, alice: TaskUser) -> None:
    response = await client.post(alice.tasks_url, json={"title": "Write report"}, headers=alice.headers)
    assert response.status_code == 201
    assert response.json()["title"] == "Write report"


@EVERY_OPERATION
async def test_another_users_id_in_the_path_is_403(
    client: httpx.AsyncClient,
    alice: TaskUser,
    bob: TaskUser,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    await create_task(client, bob)
    response = await client.request(method, bob.tasks_url + path, json=body, headers=alice.headers)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    listed = await client.get(bob.tasks_url, headers=bob.headers)
    assert [task["title"] for task in listed.json()] == ["Buy groceries"]


async def test_mismatch_is_403_even_with_invalid_input(
    client: httpx.AsyncClient, alice: TaskUser, bob: TaskUser
) -> None:
    response = await client.post(bob.tasks_url, json={"nope": 1}, headers=alice.headers)
    assert response.status_code == 403


@pytest.mark.parametrize("path_user", ["not-a-uuid", "%00", "ALICE"])
async def test_a_path_user_id_that_is_not_the_subject_is_403(
    client: httpx.AsyncClient, alice: TaskUser, path_user: str
) -> None:
    response = await client.get(f"/api/{path_user}/tasks", headers=alice.headers)
    assert response.status_code == 403


async def test_the_path_user_id_is_compared_exactly(client: httpx.AsyncClient, alice: TaskUser) -> None:
    response = await client.get(f"/api/{str(alice.id).upper()}/tasks", headers=alice.headers)
    assert response.status_code == 403


async def test_one_user_cannot_reach_anothers_task_by_any_method(
    client: httpx.AsyncClient, alice: TaskUser, bob: TaskUser
) -> None:
    bobs = await create_task(client, bob, title="Bob's secret", description="private")
    # Alice names Bob's task id under her own user_id: it is simply not there.
    got = await client.get(alice.task_url(bobs["id"]), headers=alice.headers)
    patched = await client.patch(alice.task_url(bobs["id"]), json={"title": "mine"}, headers=alice.headers)
    deleted = await client.delete(alice.task_url(bobs["id"]), headers=alice.headers)
    listed = await client.get(alice.tasks_url, headers=alice.headers)
    assert [got.status_code, patched.status_code, deleted.status_code] == [404, 404, 404]
    assert got.json()["detail"] == "task not found"
    assert listed.json() == []
    assert listed.headers["x-total-count"] == "0"

    still = await client.get(bob.task_url(bobs["id"]), headers=bob.headers)
    assert still.status_code == 200
    assert still.json()["title"] == "Bob's secret"
    assert still.json()["updated_at"] == bobs["updated_at"]


async def test_a_missing_task_and_anothers_task_answer_alike(
    client: httpx.AsyncClient, alice: TaskUser, bob: TaskUser
) -> None:
    bobs = await create_task(client, bob)
    theirs = await client.get(alice.task_url(bobs["id"]), headers=alice.headers)
    absent = await client.get(alice.task_url(bobs["id"] + 1000), headers=alice.headers)
    assert theirs.status_code == absent.status_code == 404
    assert theirs.json()["detail"] == absent.json()["detail"]


async def test_all_five_operations_are_documented(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/api/{user_id}/tasks"]) >= {"get", "post"}
    assert set(paths["/api/{user_id}/tasks/{task_id}"]) >= {"get", "patch", "delete"}
    for operations in (paths["/api/{user_id}/tasks"], paths["/api/{user_id}/tasks/{task_id}"]):
        for operation in operations.values():
            assert operation["security"] == [{"BearerToken": []}, {"OAuth2Password": []}]
            assert {"401", "403"} <= set(operation["responses"])
    docs_page = await client.get("/docs")
    assert docs_page.status_code == 200


async def test_the_versioned_paths_serve_the_same_tasks(client: httpx.AsyncClient, alice: TaskUser) -> None:
    created = await client.post(f"/api/v1/{alice.id}/tasks", json={"title": "v1"}, headers=alice.headers)
    assert created.status_code == 201
    assert created.headers["location"] == f"/api/v1/{alice.id}/tasks/{created.json()['id']}"
    unversioned = await client.get(alice.task_url(created.json()["id"]), headers=alice.headers)
    assert unversioned.json() == created.json()


async def test_a_browser_on_an_allowed_origin_may_call_and_read_headers(
    client: httpx.AsyncClient, alice: TaskUser
) -> None:
    preflight = await client.options(
        alice.task_url(1),
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    listed = await client.get(alice.tasks_url, headers={**alice.headers, "Origin": "http://localhost:3000"})
    exposed = {name.strip().lower() for name in listed.headers["access-control-expose-headers"].split(",")}
    assert {"x-total-count", "link", "location"} <= exposed
