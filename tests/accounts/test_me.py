"""The caller's own account: read it, change the profile, change the password."""

import asyncpg
import httpx

from service.settings import Settings
from tests.accounts.conftest import OTHER_STRONG_PASSWORD, STRONG_PASSWORD, auth, login
from tests.conftest import USER_FIELDS, bearer, make_user


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})


async def test_me_is_the_caller_without_secrets(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    response = await client.get("/api/v1/auth/me", headers=auth(tokens["access_token"]))
    assert response.status_code == 200
    me = response.json()
    assert set(me) == USER_FIELDS | {"mfa_enabled"}
    assert me["mfa_enabled"] is False
    assert me["email"] == "ada@example.com"
    assert "argon2" not in response.text


async def test_me_works_for_an_external_identity(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
) -> None:
    user_id = await make_user(db, "sb@example.com", provider="supabase")
    response = await client.get("/api/auth/me", headers=bearer(settings, user_id))
    assert response.json()["provider"] == "supabase"


async def test_patch_full_name_and_clear_it(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    headers = auth(tokens["access_token"])
    before = (await client.get("/api/auth/me", headers=headers)).json()
    named = await client.patch("/api/auth/me", headers=headers, json={"full_name": "Ada Lovelace"})
    assert named.status_code == 200
    assert named.json()["full_name"] == "Ada Lovelace"
    assert named.json()["updated_at"] > before["updated_at"]
    unchanged = await client.patch("/api/auth/me", headers=headers, json={})
    assert unchanged.json()["full_name"] == "Ada Lovelace"
    cleared = await client.patch("/api/auth/me", headers=headers, json={"full_name": None})
    assert cleared.json()["full_name"] is None


async def test_patch_refuses_what_a_user_may_not_set(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    refused: list[tuple[dict[str, object], str]] = [
        ({"role": "admin"}, "role"),
        ({"is_active": False}, "is_active"),
        ({"email": "new@example.com"}, "email"),
        ({"full_name": "x" * 201}, "full_name"),
        ({"full_name": "bad\x00name"}, "full_name"),
        ({"full_name": 5}, "full_name"),
    ]
    for body, field in refused:
        response = await client.patch("/api/auth/me", headers=auth(tokens["access_token"]), json=body)
        assert response.status_code == 400, body
        assert response.json()["errors"][0]["field"] == field, body


async def test_patch_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.patch("/api/auth/me", json={"full_name": "Eve"})
    assert response.status_code == 401


async def test_password_change_needs_the_current_password(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    headers = auth(tokens["access_token"])
    missing = await client.patch("/api/auth/me", headers=headers, json={"password": OTHER_STRONG_PASSWORD})
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "current_password"

    wrong = await client.patch(
        "/api/auth/me",
        headers=headers,
        json={"password": OTHER_STRONG_PASSWORD, "current_password": "not my password"},
    )
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["field"] == "current_password"
    assert await db.fetchval("SELECT failures FROM login_failures WHERE email = 'ada@example.com'") == 1

    weak = await client.patch(
        "/api/auth/me", headers=headers, json={"password": "password", "current_password": STRONG_PASSWORD}
    )
    assert weak.status_code == 400
    assert weak.json()["errors"][0]["field"] == "password"
    assert (await login(client)).status_code == 200, "the password is unchanged"


async def test_guessing_the_current_password_hits_the_lockout(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    headers = auth(tokens["access_token"])
    change = {"password": OTHER_STRONG_PASSWORD, "current_password": "a wrong guess"}
    for _ in range(5):
        assert (await client.patch("/api/auth/me", headers=headers, json=change)).status_code == 400
    change["current_password"] = STRONG_PASSWORD
    locked = await client.patch("/api/auth/me", headers=headers, json=change)
    assert locked.status_code == 429
    assert "retry-after" in locked.headers


async def test_password_change_ends_every_other_session(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    other = (await login(client)).json()
    response = await client.patch(
        "/api/auth/me",
        headers=auth(tokens["access_token"]),
        json={"password": OTHER_STRONG_PASSWORD, "current_password": STRONG_PASSWORD, "full_name": "Ada"},
    )
    assert response.status_code == 200
    assert response.json()["full_name"] == "Ada"

    assert (await client.get("/api/auth/me", headers=auth(other["access_token"]))).status_code == 401
    assert (await _refresh(client, other["refresh_token"])).status_code == 401

    # This session continues through its refresh token; its old access token is spent.
    assert (await client.get("/api/auth/me", headers=auth(tokens["access_token"]))).status_code == 401
    continued = await _refresh(client, tokens["refresh_token"])
    assert continued.status_code == 200
    assert (
        await client.get("/api/auth/me", headers=auth(continued.json()["access_token"]))
    ).status_code == 200

    assert (await login(client)).status_code == 401
    assert (await login(client, password=OTHER_STRONG_PASSWORD)).status_code == 200
    assert await db.fetchval("SELECT count(*) FROM audit_events WHERE action = 'auth.password_changed'") == 1


async def test_an_external_identity_has_no_password_to_change(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
) -> None:
    user_id = await make_user(db, "sb@example.com", provider="supabase")
    response = await client.patch(
        "/api/auth/me",
        headers=bearer(settings, user_id),
        json={"password": OTHER_STRONG_PASSWORD, "current_password": "whatever it was"},
    )
    assert response.status_code == 400
    assert "supabase" in response.json()["detail"]
