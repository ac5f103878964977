"""Session management: the caller's sessions, ending one or every other, and an admin ending all."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import httpx

from service.settings import Settings
from tests.accounts.conftest import auth, login, register
from tests.conftest import bearer, make_user

SESSION_FIELDS = {"id", "created_at", "last_used_at", "expires_at", "ip", "user_agent", "provider", "current"}


async def _sessions(client: httpx.AsyncClient, access_token: str) -> list[dict[str, object]]:
    response = await client.get("/api/auth/sessions", headers=auth(access_token))
    assert response.status_code == 200, response.text
    sessions: list[dict[str, object]] = response.json()
    return sessions


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})


async def _me(client: httpx.AsyncClient, access_token: str) -> int:
    return (await client.get("/api/auth/me", headers=auth(access_token))).status_code


async def test_the_callers_sessions_newest_first_with_the_current_one_marked(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    phone = (
        await client.post(
            "/api/auth/login",
            data={"username": "ada@example.com", "password": "correct horse battery staple"},
            headers={"User-Agent": "phone/1.0"},
        )
    ).json()
    refreshed = (
        await client.post(
            "/api/auth/refresh",
            json={"refresh_token": phone["refresh_token"]},
            headers={"User-Agent": "phone/1.1"},
        )
    ).json()

    sessions = await _sessions(client, refreshed["access_token"])
    assert [set(session) for session in sessions] == [SESSION_FIELDS, SESSION_FIELDS]
    newest, oldest = sessions
    assert newest["current"] is True
    assert oldest["current"] is False
    assert newest["user_agent"] == "phone/1.1", "the client of the last refresh"
    assert newest["ip"] == "127.0.0.1"
    assert newest["provider"] == "local"
    assert str(newest["created_at"]) < str(newest["last_used_at"]), "the refresh is the last use"
    assert oldest["created_at"] == oldest["last_used_at"], "never refreshed: last used at the login"
    assert str(newest["created_at"]) > str(oldest["created_at"])
    assert str(newest["expires_at"]) > str(newest["last_used_at"])

    from_first = await _sessions(client, tokens["access_token"])
    assert [session["current"] for session in from_first] == [False, True]
    assert (
        await client.get("/api/v1/auth/sessions", headers=auth(tokens["access_token"]))
    ).status_code == 200


async def test_ended_and_expired_sessions_are_not_listed(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    logged_out = (await login(client)).json()
    expired = (await login(client)).json()
    assert (
        await client.post("/api/auth/logout", headers=auth(logged_out["access_token"]))
    ).status_code == 204
    await db.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE access_jti = "
        "(SELECT access_jti FROM refresh_tokens ORDER BY issued_at DESC LIMIT 1)"
    )
    assert expired["access_token"]
    assert len(await _sessions(client, tokens["access_token"])) == 1


async def test_ending_a_session_stops_its_refresh_token_and_every_access_token_issued_in_it(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    laptop = (await login(client)).json()
    laptop_before_refresh = laptop["access_token"]
    laptop = (await _refresh(client, laptop["refresh_token"])).json()
    laptop_id = next(s["id"] for s in await _sessions(client, laptop["access_token"]) if s["current"])

    response = await client.delete(f"/api/auth/sessions/{laptop_id}", headers=auth(tokens["access_token"]))
    assert response.status_code == 204
    assert await _me(client, laptop["access_token"]) == 401
    assert await _me(client, laptop_before_refresh) == 401, "an older access token of the session too"
    assert (await _refresh(client, laptop["refresh_token"])).status_code == 401
    assert await _me(client, tokens["access_token"]) == 200, "the session that asked lives on"

    again = await client.delete(f"/api/auth/sessions/{laptop_id}", headers=auth(tokens["access_token"]))
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"
    event = await db.fetchrow("SELECT * FROM audit_events WHERE action = 'auth.session_ended'")
    assert event["target_type"] == "session"
    assert event["target_id"] == laptop_id


async def test_a_user_may_end_the_current_session_too(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    current = next(s["id"] for s in await _sessions(client, tokens["access_token"]) if s["current"])
    response = await client.delete(f"/api/auth/sessions/{current}", headers=auth(tokens["access_token"]))
    assert response.status_code == 204
    assert await _me(client, tokens["access_token"]) == 401
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 401


async def test_another_users_session_is_404_and_keeps_working(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await register(client, "eve@example.com")
    eve = (await login(client, "eve@example.com")).json()
    adas = (await _sessions(client, tokens["access_token"]))[0]["id"]
    for session_id in (adas, str(uuid.uuid4())):
        response = await client.delete(f"/api/auth/sessions/{session_id}", headers=auth(eve["access_token"]))
        assert response.status_code == 404
        assert response.json()["detail"] == f"no live session {session_id}"
    assert await _me(client, tokens["access_token"]) == 200
    assert (
        await client.delete("/api/auth/sessions/not-a-uuid", headers=auth(eve["access_token"]))
    ).status_code in (
        400,
        404,
    )


async def test_ending_every_other_session_keeps_the_current_one(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    others = [(await login(client)).json() for _ in range(3)]
    response = await client.delete("/api/auth/sessions", headers=auth(tokens["access_token"]))
    assert response.status_code == 204
    for other in others:
        assert await _me(client, other["access_token"]) == 401
        assert (await _refresh(client, other["refresh_token"])).status_code == 401
    assert await _me(client, tokens["access_token"]) == 200
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 200
    event = await db.fetchrow("SELECT * FROM audit_events WHERE action = 'auth.other_sessions_ended'")
    assert json.loads(event["details"])["count"] == 3


async def test_concurrent_endings_of_one_session_end_it_once(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    laptop = (await login(client)).json()
    laptop_id = next(s["id"] for s in await _sessions(client, laptop["access_token"]) if s["current"])
    answers = await asyncio.gather(
        *(
            client.delete(f"/api/auth/sessions/{laptop_id}", headers=auth(tokens["access_token"]))
            for _ in range(10)
        )
    )
    assert sorted(answer.status_code for answer in answers) == [204] + [404] * 9
    assert await db.fetchval("SELECT count(*) FROM audit_events WHERE action = 'auth.session_ended'") == 1


async def test_sessions_need_a_valid_access_token(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    for method, path in (("GET", "/api/auth/sessions"), ("DELETE", "/api/auth/sessions")):
        response = await client.request(method, path, headers=auth(tokens["refresh_token"]))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_an_admin_lists_and_ends_every_session_of_a_user(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings, tokens: dict[str, str]
) -> None:
    second = (await login(client)).json()
    ada = await db.fetchval("SELECT id FROM users WHERE email = 'ada@example.com'")
    admin = bearer(settings, await make_user(db, "ops@example.com", role="admin"))

    listed = await client.get(f"/api/users/{ada}/sessions", headers=admin)
    assert listed.status_code == 200
    assert [session["current"] for session in listed.json()] == [False, False]

    response = await client.delete(f"/api/users/{ada}/sessions", headers=admin)
    assert response.status_code == 204
    for pair in (tokens, second):
        assert await _me(client, pair["access_token"]) == 401
        assert (await _refresh(client, pair["refresh_token"])).status_code == 401
    assert (await client.get(f"/api/v1/users/{ada}/sessions", headers=admin)).json() == []
    event = await db.fetchrow("SELECT * FROM audit_events WHERE action = 'user.sessions_ended'")
    assert event["target_id"] == str(ada)
    assert event["actor_email"] == "ops@example.com"
    assert json.loads(event["details"])["count"] == 2


async def test_the_admin_routes_are_for_admins_and_known_users(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings, tokens: dict[str, str]
) -> None:
    ada = await db.fetchval("SELECT id FROM users WHERE email = 'ada@example.com'")
    for method in ("GET", "DELETE"):
        own = await client.request(method, f"/api/users/{ada}/sessions", headers=auth(tokens["access_token"]))
        assert own.status_code == 403, "not even for the user themself: they use /api/auth/sessions"
        assert own.headers["content-type"] == "application/problem+json"
    admin = bearer(settings, await make_user(db, role="admin"))
    for method in ("GET", "DELETE"):
        unknown = await client.request(method, f"/api/users/{uuid.uuid4()}/sessions", headers=admin)
        assert unknown.status_code == 404
    assert await _me(client, tokens["access_token"]) == 200
