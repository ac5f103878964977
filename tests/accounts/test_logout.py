"""Logout: the access token and its refresh family stop working at once; nothing else does."""

import asyncpg
import httpx

from service.settings import Settings
from tests.accounts.conftest import auth, login, register
from tests.conftest import bearer


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})


async def test_logout_ends_the_access_token_and_its_refresh_family(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    other_session = (await login(client)).json()
    response = await client.post("/api/auth/logout", headers=auth(tokens["access_token"]))
    assert response.status_code == 204
    assert response.content == b""

    after = await client.get("/api/auth/me", headers=auth(tokens["access_token"]))
    assert after.status_code == 401
    assert after.json()["detail"] == "token has been revoked"
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 401

    assert (await client.get("/api/auth/me", headers=auth(other_session["access_token"]))).status_code == 200
    assert (await _refresh(client, other_session["refresh_token"])).status_code == 200
    assert await db.fetchval("SELECT count(*) FROM audit_events WHERE action = 'auth.logout'") == 1


async def test_logout_after_a_refresh_ends_the_current_pair(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    fresh = (await _refresh(client, tokens["refresh_token"])).json()
    assert (await client.post("/api/v1/auth/logout", headers=auth(fresh["access_token"]))).status_code == 204
    assert (await _refresh(client, fresh["refresh_token"])).status_code == 401
    assert (await client.get("/api/auth/me", headers=auth(fresh["access_token"]))).status_code == 401


async def test_logout_may_name_a_refresh_token_of_the_callers_own(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    second = (await login(client)).json()
    response = await client.post(
        "/api/auth/logout",
        headers=auth(tokens["access_token"]),
        json={"refresh_token": second["refresh_token"]},
    )
    assert response.status_code == 204
    assert (await _refresh(client, second["refresh_token"])).status_code == 401


async def test_logout_cannot_end_someone_elses_session(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings, tokens: dict[str, str]
) -> None:
    await register(client, "eve@example.com")
    eve = (await login(client, "eve@example.com")).json()
    response = await client.post(
        "/api/auth/logout", headers=auth(eve["access_token"]), json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 204
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 200


async def test_logout_needs_a_valid_access_token(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    response = await client.post("/api/auth/logout")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.post("/api/auth/logout", headers=auth(tokens["refresh_token"]))).status_code == 401


async def test_logout_of_a_token_issued_outside_a_login(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings, tokens: dict[str, str]
) -> None:
    user_id = await db.fetchval("SELECT id FROM users")
    headers = bearer(settings, user_id)
    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 200, (
        "the login's session lives on"
    )


async def test_logout_body_must_be_json(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    response = await client.post(
        "/api/auth/logout",
        headers=auth(tokens["access_token"]),
        data={"refresh_token": tokens["refresh_token"]},
    )
    assert response.status_code == 415
