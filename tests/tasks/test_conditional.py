"""Conditional requests on tasks (RFC 9110 section 13): ETag, 304 on If-None-Match, 412 on a stale
If-Match, and optimistic concurrency that holds with many clients at once, in one process and
across two worker processes."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from tests.accounts.conftest import STRONG_PASSWORD
from tests.reliability.conftest import live_service
from tests.tasks.conftest import TaskUser, create_task

RACERS = 12
PROBLEM_JSON = "application/problem+json"


async def test_a_task_has_a_strong_etag_and_a_matching_if_none_match_gets_304(
    client: httpx.AsyncClient, alice: TaskUser
) -> None:
    created = await client.post(alice.tasks_url, json={"title": "Buy milk"}, headers=alice.headers)
    tag = created.headers["etag"]
    assert re.fullmatch(r'"[^"]+"', tag), "a strong tag: no W/ prefix"

    fetched = await client.get(alice.task_url(created.json()["id"]), headers=alice.headers)
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == tag, "the same version has the same tag"

    again = await client.get(
        alice.task_url(created.json()["id"]), headers={**alice.headers, "If-None-Match": tag}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    weak = await client.get(
        alice.task_url(created.json()["id"]), headers={**alice.headers, "If-None-Match": f'W/{tag}, "x"'}
    )
    assert weak.status_code == 304, "If-None-Match compares weakly, any tag of the list"


async def test_a_change_gives_a_new_etag_and_the_old_one_no_longer_matches(
    client: httpx.AsyncClient, alice: TaskUser
) -> None:
    task = await create_task(client, alice)
    url = alice.task_url(task["id"])
    old = (await client.get(url, headers=alice.headers)).headers["etag"]

    changed = await client.patch(url, json={"is_completed": True}, headers={**alice.headers, "If-Match": old})
    assert changed.status_code == 200, changed.text
    new = changed.headers["etag"]
    assert new != old

    fresh = await client.get(url, headers={**alice.headers, "If-None-Match": old})
    assert fresh.status_code == 200
    assert fresh.json()["is_completed"] is True
    assert fresh.headers["etag"] == new


async def test_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, alice: TaskUser
) -> None:
    task = await create_task(client, alice, title="First")
    url = alice.task_url(task["id"])
    stale = (await client.get(url, headers=alice.headers)).headers["etag"]
    assert (await client.patch(url, json={"title": "Second"}, headers=alice.headers)).status_code == 200

    refused = await client.patch(url, json={"title": "Third"}, headers={**alice.headers, "If-Match": stale})
    assert refused.status_code == 412
    assert refused.headers["content-type"].startswith(PROBLEM_JSON)
    assert "changed" in refused.json()["detail"]
    not_deleted = await client.delete(url, headers={**alice.headers, "If-Match": stale})
    assert not_deleted.status_code == 412
    weak_only = await client.patch(
        url, json={"title": "Fourth"}, headers={**alice.headers, "If-Match": f"W/{stale}"}
    )
    assert weak_only.status_code == 412, "If-Match compares strongly: a weak tag never matches"

    current = await client.get(url, headers=alice.headers)
    assert current.json()["title"] == "Second"

    deleted = await client.delete(url, headers={**alice.headers, "If-Match": current.headers["etag"]})
    assert deleted.status_code == 204
    assert (await client.get(url, headers=alice.headers)).status_code == 404


async def test_if_match_star_and_lists_and_missing_tasks(client: httpx.AsyncClient, alice: TaskUser) -> None:
    task = await create_task(client, alice)
    url = alice.task_url(task["id"])
    tag = (await client.get(url, headers=alice.headers)).headers["etag"]

    listed = await client.patch(
        url, json={"title": "Listed"}, headers={**alice.headers, "If-Match": f'"1", {tag}'}
    )
    assert listed.status_code == 200
    star = await client.patch(url, json={"title": "Star"}, headers={**alice.headers, "If-Match": "*"})
    assert star.status_code == 200

    missing = alice.task_url(task["id"] + 1000)
    assert (
        await client.patch(missing, json={"title": "x"}, headers={**alice.headers, "If-Match": tag})
    ).status_code == 404
    assert (await client.delete(missing, headers={**alice.headers, "If-Match": "*"})).status_code == 412

    malformed = await client.patch(
        url, json={"title": "x"}, headers={**alice.headers, "If-Match": "no-quotes"}
    )
    assert malformed.status_code == 400
    assert "If-Match" in malformed.json()["detail"]


async def test_another_users_tag_reveals_nothing(
    client: httpx.AsyncClient, alice: TaskUser, bob: TaskUser
) -> None:
    task = await create_task(client, alice)
    tag = (await client.get(alice.task_url(task["id"]), headers=alice.headers)).headers["etag"]
    peek = await client.get(alice.task_url(task["id"]), headers={**bob.headers, "If-None-Match": tag})
    assert peek.status_code == 403, "bob's token does not reach alice's path"
    own_path = await client.get(bob.task_url(task["id"]), headers={**bob.headers, "If-None-Match": tag})
    assert own_path.status_code == 404, "no 304 for a task that is not the caller's"


async def test_the_task_list_etag_follows_every_change_and_its_total(
    client: httpx.AsyncClient, alice: TaskUser
) -> None:
    first = await create_task(client, alice, title="one")
    await create_task(client, alice, title="two")
    page = await client.get(f"{alice.tasks_url}?limit=1", headers=alice.headers)
    tag = page.headers["etag"]
    assert (
        await client.get(f"{alice.tasks_url}?limit=1", headers={**alice.headers, "If-None-Match": tag})
    ).status_code == 304

    # A task on another page goes: this page's rows are the same, its X-Total-Count is not.
    assert (await client.delete(alice.task_url(first["id"]), headers=alice.headers)).status_code == 204
    after = await client.get(f"{alice.tasks_url}?limit=1", headers={**alice.headers, "If-None-Match": tag})
    assert after.status_code == 200
    assert after.headers["x-total-count"] == "1"
    assert after.headers["etag"] != tag

    unfiltered = after.headers["etag"]
    filtered = await client.get(f"{alice.tasks_url}?completed=false&limit=1", headers=alice.headers)
    assert filtered.headers["etag"] == unfiltered, "the same bytes, the same tag"


async def test_concurrent_writers_with_one_etag_exactly_one_wins(
    client: httpx.AsyncClient, alice: TaskUser, db: asyncpg.Connection
) -> None:
    task = await create_task(client, alice, title="start")
    url = alice.task_url(task["id"])
    tag = (await client.get(url, headers=alice.headers)).headers["etag"]

    answers = await asyncio.gather(
        *(
            client.patch(url, json={"title": f"writer {n}"}, headers={**alice.headers, "If-Match": tag})
            for n in range(RACERS)
        )
    )
    assert Counter(answer.status_code for answer in answers) == {200: 1, 412: RACERS - 1}
    [winner] = [answer for answer in answers if answer.status_code == 200]
    stored = await db.fetchval("SELECT title FROM tasks WHERE id = $1", task["id"])
    assert stored == winner.json()["title"], "the one write that was answered 200 is the one stored"


async def test_two_worker_processes_let_one_of_many_writers_win(database_url: str, tmp_path: Path) -> None:
    with live_service(database_url, tmp_path, WEB_CONCURRENCY="2") as (_, base):
        limits = httpx.Limits(max_connections=RACERS * 2)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
            email = f"writer-{uuid.uuid4().hex[:8]}@example.com"
            user = (
                await http.post("/api/auth/register", json={"email": email, "password": STRONG_PASSWORD})
            ).json()
            login = await http.post("/api/auth/login", data={"username": email, "password": STRONG_PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            created = await http.post(f"/api/{user['id']}/tasks", json={"title": "shared"}, headers=headers)
            url = created.headers["location"]
            tag = created.headers["etag"]

            writes = [
                http.patch(url, json={"title": f"writer {n}"}, headers={**headers, "If-Match": tag})
                for n in range(RACERS - 1)
            ]
            deletion = http.delete(url, headers={**headers, "If-Match": tag})
            answers = await asyncio.gather(*writes, deletion)
            statuses = Counter(answer.status_code for answer in answers)
            assert sum(statuses[s] for s in (200, 204)) == 1, statuses
            assert statuses[412] == RACERS - 1, statuses

            me = await http.get("/api/auth/me", headers=headers)
            me_tag = me.headers["etag"]
            renames = await asyncio.gather(
                *(
                    http.patch(
                        "/api/auth/me",
                        json={"full_name": f"Name {n}"},
                        headers={**headers, "If-Match": me_tag},
                    )
                    for n in range(RACERS)
                )
            )
            assert Counter(answer.status_code for answer in renames) == {200: 1, 412: RACERS - 1}
