"""Seed 002 with Better Auth and Supabase tokens: the path's user_id is the token's `sub`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import jwt
import pytest
from litestar import Litestar

from service.app import create_app
from service.settings import Settings
from tests.conftest import make_settings, running

BETTER_AUTH_SECRET = "better-auth-shared-secret-" + "b" * 20
SUPABASE_JWT_SECRET = "supabase-legacy-jwt-secret-" + "s" * 20


def better_auth_token(subject: str) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"sub": subject, "iat": now, "exp": now + 600}, BETTER_AUTH_SECRET, "HS256")
    return {"Authorization": f"Bearer {token}"}


def supabase_token(subject: str) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": "https://project-ref.supabase.co/auth/v1",
        "sub": subject,
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 600,
    }
    token = jwt.encode(claims, SUPABASE_JWT_SECRET, "HS256")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def external_client(
    database_url: str, tmp_path, db: asyncpg.Connection
) -> AsyncIterator[httpx.AsyncClient]:
    settings: Settings = make_settings(
        database_url,
        tmp_path,
        BETTER_AUTH_SECRET=BETTER_AUTH_SECRET,
        SUPABASE_JWT_SECRET=SUPABASE_JWT_SECRET,
    )
    app: Litestar = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_a_better_auth_user_works_with_seed_002_paths(external_client: httpx.AsyncClient) -> None:
    subject = "ba_Xq81sLk2"  # Better Auth ids are not UUIDs
    headers = better_auth_token(subject)
    created = await external_client.post(f"/api/{subject}/tasks", json={"title": "Ship it"}, headers=headers)
    assert created.status_code == 201
    assert created.json()["user_id"] == subject
    listed = await external_client.get(f"/api/{subject}/tasks", headers=headers)
    assert [task["title"] for task in listed.json()] == ["Ship it"]
    me = await external_client.get("/api/auth/me", headers=headers)
    assert me.json()["provider"] == "better-auth"

    other = "ba_someone_else"
    refused = await external_client.get(f"/api/{other}/tasks", headers=headers)
    assert refused.status_code == 403
    stranger = await external_client.get(f"/api/{other}/tasks", headers=better_auth_token(other))
    assert stranger.json() == []


async def test_a_supabase_user_works_with_seed_002_paths(external_client: httpx.AsyncClient) -> None:
    subject = str(uuid.uuid4())
    headers = supabase_token(subject)
    created = await external_client.post(
        f"/api/{subject}/tasks", json={"title": "Call back"}, headers=headers
    )
    assert created.status_code == 201
    task_id = created.json()["id"]
    patched = await external_client.patch(
        f"/api/{subject}/tasks/{task_id}", json={"is_completed": True}, headers=headers
    )
    assert patched.json()["is_completed"] is True
    me = await external_client.get("/api/auth/me", headers=headers)
    assert me.json()["provider"] == "supabase"
    # The same subject from Better Auth is another account: it cannot see the Supabase user's task.
    look = await external_client.get(f"/api/{subject}/tasks/{task_id}", headers=better_auth_token(subject))
    assert look.status_code == 404


async def test_a_subject_outside_latin_1_gets_percent_encoded_link_and_location(
    external_client: httpx.AsyncClient,
) -> None:
    subject = "пользователь-7"  # a header cannot carry it as it is (it had made the list a 500)
    encoded = "%D0%BF%D0%BE%D0%BB%D1%8C%D0%B7%D0%BE%D0%B2%D0%B0%D1%82%D0%B5%D0%BB%D1%8C-7"
    for headers in (better_auth_token(subject), supabase_token(subject)):
        created = [
            await external_client.post(f"/api/{subject}/tasks", json={"title": title}, headers=headers)
            for title in ("one", "two")
        ]
        assert [answer.status_code for answer in created] == [201, 201]
        assert created[0].headers["location"] == f"/api/{encoded}/tasks/{created[0].json()['id']}"
        for prefix in ("/api", "/api/v1"):
            listed = await external_client.get(f"{prefix}/{subject}/tasks?limit=1", headers=headers)
            assert listed.status_code == 200
            assert listed.headers["link"] == f'<{prefix}/{encoded}/tasks?limit=1&offset=1>; rel="next"'
            next_url = listed.headers["link"][1:].partition(">")[0]
            following = await external_client.get(next_url, headers=headers)
            assert [task["title"] for task in following.json()] == ["one"]
