"""/api/auth/me under conditional requests: an ETag that follows every change of the account
(whoever makes it), 304 on If-None-Match, and 412 on a stale If-Match with nothing changed."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import httpx

from tests.accounts.conftest import OTHER_STRONG_PASSWORD, STRONG_PASSWORD, auth

RACERS = 10


async def test_me_has_an_etag_and_answers_304_while_it_holds(
    client: httpx.AsyncClient, tokens: dict[str, str], db: asyncpg.Connection
) -> None:
    headers = auth(tokens["access_token"])
    first = await client.get("/api/auth/me", headers=headers)
    tag = first.headers["etag"]
    same = await client.get("/api/auth/me", headers={**headers, "If-None-Match": tag})
    assert same.status_code == 304
    assert same.content == b""

    # A change by another path (an administrator, a migration, psql) changes the tag too.
    await db.execute("UPDATE users SET full_name = 'Changed Elsewhere' WHERE email = 'ada@example.com'")
    changed = await client.get("/api/auth/me", headers={**headers, "If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.json()["full_name"] == "Changed Elsewhere"
    assert changed.headers["etag"] != tag


async def test_patch_me_with_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    headers = auth(tokens["access_token"])
    stale = (await client.get("/api/auth/me", headers=headers)).headers["etag"]
    renamed = await client.patch(
        "/api/auth/me", json={"full_name": "Ada"}, headers={**headers, "If-Match": stale}
    )
    assert renamed.status_code == 200
    current = renamed.headers["etag"]
    assert current != stale
    assert (
        await client.get("/api/auth/me", headers={**headers, "If-None-Match": current})
    ).status_code == 304

    refused = await client.patch(
        "/api/auth/me", json={"full_name": "Eve"}, headers={**headers, "If-Match": stale}
    )
    assert refused.status_code == 412
    assert refused.headers["content-type"].startswith("application/problem+json")
    password = await client.patch(
        "/api/auth/me",
        json={"password": OTHER_STRONG_PASSWORD, "current_password": STRONG_PASSWORD},
        headers={**headers, "If-Match": stale},
    )
    assert password.status_code == 412, "a stale tag changes no password either"
    login = await client.post(
        "/api/auth/login", data={"username": "ada@example.com", "password": STRONG_PASSWORD}
    )
    assert login.status_code == 200, "the old password still works"
    assert (await client.get("/api/auth/me", headers=headers)).json()["full_name"] == "Ada"


async def test_concurrent_patches_of_me_with_one_tag_exactly_one_wins(
    client: httpx.AsyncClient, tokens: dict[str, str], db: asyncpg.Connection
) -> None:
    headers = auth(tokens["access_token"])
    tag = (await client.get("/api/auth/me", headers=headers)).headers["etag"]
    answers = await asyncio.gather(
        *(
            client.patch(
                "/api/auth/me", json={"full_name": f"Name {n}"}, headers={**headers, "If-Match": tag}
            )
            for n in range(RACERS)
        )
    )
    assert Counter(answer.status_code for answer in answers) == {200: 1, 412: RACERS - 1}
    [winner] = [answer for answer in answers if answer.status_code == 200]
    stored = await db.fetchval("SELECT full_name FROM users WHERE email = 'ada@example.com'")
    assert stored == winner.json()["full_name"]
