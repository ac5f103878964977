"""The users admin: list and search, partial updates, mass assignment, sessions ended, the last admin."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import httpx
import pytest

from service.settings import Settings
from tests.conftest import USER_FIELDS, make_user
from tests.users.conftest import Account, make_account


async def add_refresh_token(db: asyncpg.Connection, user_id: uuid.UUID) -> uuid.UUID:
    token_id: uuid.UUID = await db.fetchval(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) "
        "VALUES ($1, gen_random_uuid(), $2, now() + interval '1 day') RETURNING id",
        os.urandom(32),
        user_id,
    )
    return token_id


async def live_refresh_tokens(db: asyncpg.Connection, user_id: uuid.UUID) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL", user_id
    )
    return count


async def events(db: asyncpg.Connection, action: str) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM audit_events WHERE action = $1 ORDER BY id", action)


# -- list ---------------------------------------------------------------------------------------


async def test_list_pages_newest_first_with_a_total(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings, admin: Account
) -> None:
    created = [await make_account(db, settings) for _ in range(4)]
    first = await client.get("/api/users", params={"limit": 2}, headers=admin.headers)
    assert first.status_code == 200
    page = first.json()
    assert page["total"] == 5
    assert (page["limit"], page["offset"]) == (2, 0)
    assert [item["id"] for item in page["items"]] == [str(created[3].id), str(created[2].id)]
    assert set(page["items"][0]) == USER_FIELDS
    last = (await client.get("/api/users?limit=2&offset=4", headers=admin.headers)).json()
    assert [item["id"] for item in last["items"]] == [str(admin.id)]
    beyond = (await client.get("/api/users?offset=50", headers=admin.headers)).json()
    assert beyond["items"] == []
    assert beyond["total"] == 5


async def test_seed_003_path_with_a_trailing_slash(client: httpx.AsyncClient, admin: Account) -> None:
    response = await client.get("/api/v1/users/", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["total"] == 1


async def test_search_matches_email_substrings_literally(
    client: httpx.AsyncClient, db: asyncpg.Connection, admin: Account
) -> None:
    await make_user(db, "Grace.Hopper@Navy.example")
    await make_user(db, "ada_lovelace@example.com")
    await make_user(db, "adaxlovelace@example.com")
    await make_user(db, "100%real@example.com")

    async def search(q: str) -> list[str]:
        response = await client.get("/api/users", params={"q": q}, headers=admin.headers)
        assert response.status_code == 200
        return sorted(item["email"] for item in response.json()["items"])

    assert await search("grace.hopper@NAVY") == ["Grace.Hopper@Navy.example"]
    assert await search("ada_") == ["ada_lovelace@example.com"]  # _ is not a wildcard
    assert await search("%") == ["100%real@example.com"]  # neither is %
    assert await search("\\") == []
    assert await search("nobody") == []


async def test_filter_by_role_and_active_flag(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings, admin: Account
) -> None:
    retired = await make_account(db, settings)
    await db.execute("UPDATE users SET is_active = false WHERE id = $1", retired.id)
    await make_account(db, settings)

    async def ids(**params: str) -> set[str]:
        response = await client.get("/api/users", params=params, headers=admin.headers)
        assert response.status_code == 200
        body = response.json()
        assert body["total"] == len(body["items"])
        return {item["id"] for item in body["items"]}

    assert await ids(role="admin") == {str(admin.id)}
    assert await ids(is_active="false") == {str(retired.id)}
    assert len(await ids(role="user", is_active="true")) == 1


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "offset=-1", "role=root", "is_active=maybe", "q=a%00b", "q=" + "a" * 321],
)
async def test_list_rejects_bad_parameters(client: httpx.AsyncClient, admin: Account, query: str) -> None:
    response = await client.get(f"/api/users?{query}", headers=admin.headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


# -- read and update ----------------------------------------------------------------------------


async def test_get_shows_the_user_without_secrets(
    client: httpx.AsyncClient, db: asyncpg.Connection, user: Account
) -> None:
    await db.execute("UPDATE users SET password_hash = 'argon2-hash' WHERE id = $1", user.id)
    response = await client.get(f"/api/users/{user.id}", headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == user.email
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert "argon2-hash" not in response.text
    assert "password" not in str(body)


async def test_patch_changes_only_the_fields_sent_and_null_clears(
    client: httpx.AsyncClient, user: Account
) -> None:
    named = await client.patch(f"/api/users/{user.id}", json={"full_name": "Ada"}, headers=user.headers)
    assert named.status_code == 200
    assert named.json()["full_name"] == "Ada"
    assert named.json()["updated_at"] > named.json()["created_at"]
    unchanged = await client.patch(f"/api/users/{user.id}", json={}, headers=user.headers)
    assert unchanged.json()["full_name"] == "Ada"
    cleared = await client.put(f"/api/v1/users/{user.id}", json={"full_name": None}, headers=user.headers)
    assert cleared.status_code == 200
    assert cleared.json()["full_name"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"email": "new@example.com"},
        {"password_hash": "x"},
        {"provider": "supabase"},
        {"id": str(uuid.uuid4())},
        {"full_name": "Ada", "is_admin": True},
        {"full_name": ""},
        {"full_name": "x" * 201},
        {"full_name": "nul\u0000byte"},
        {"full_name": 42},
        {"role": "root"},
        {"is_active": "yes"},
    ],
)
async def test_fields_outside_the_contract_are_refused(
    client: httpx.AsyncClient, db: asyncpg.Connection, admin: Account, user: Account, body: dict[str, object]
) -> None:
    before = await db.fetchrow("SELECT * FROM users WHERE id = $1", user.id)
    for caller in (user, admin):
        response = await client.patch(f"/api/users/{user.id}", json=body, headers=caller.headers)
        assert response.status_code == 400, body
        assert response.json()["detail"]
    assert await db.fetchrow("SELECT * FROM users WHERE id = $1", user.id) == before


async def test_a_user_cannot_touch_role_or_active_flag_even_with_a_profile_change(
    client: httpx.AsyncClient, db: asyncpg.Connection, user: Account
) -> None:
    for body in ({"role": "admin"}, {"is_active": True}, {"full_name": "Ada", "role": "user"}):
        response = await client.patch(f"/api/users/{user.id}", json=body, headers=user.headers)
        assert response.status_code == 403
        assert "administrator" in response.json()["detail"]
    row = await db.fetchrow("SELECT role, full_name FROM users WHERE id = $1", user.id)
    assert (row["role"], row["full_name"]) == ("user", None)


async def test_a_body_that_is_not_json_is_400(client: httpx.AsyncClient, user: Account) -> None:
    response = await client.patch(
        f"/api/users/{user.id}",
        content=b"{not json",
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400


# -- sessions end at once -----------------------------------------------------------------------


@pytest.mark.parametrize("change", [{"role": "user"}, {"is_active": False}])
async def test_demoting_or_deactivating_ends_every_session(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    settings: Settings,
    admin: Account,
    change: dict[str, object],
) -> None:
    target = await make_account(db, settings, "admin")
    await add_refresh_token(db, target.id)
    assert (await client.get(f"/api/users/{target.id}", headers=target.headers)).status_code == 200

    response = await client.patch(f"/api/users/{target.id}", json=change, headers=admin.headers)
    assert response.status_code == 200
    assert (await client.get(f"/api/users/{target.id}", headers=target.headers)).status_code == 401
    assert await live_refresh_tokens(db, target.id) == 0


async def test_reactivation_does_not_revive_old_tokens(
    client: httpx.AsyncClient, db: asyncpg.Connection, admin: Account, user: Account
) -> None:
    await client.patch(f"/api/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    back = await client.patch(f"/api/users/{user.id}", json={"is_active": True}, headers=admin.headers)
    assert back.json()["is_active"] is True
    assert (await client.get(f"/api/users/{user.id}", headers=user.headers)).status_code == 401


async def test_promotion_keeps_sessions_and_grants_admin_at_once(
    client: httpx.AsyncClient, db: asyncpg.Connection, admin: Account, user: Account
) -> None:
    await add_refresh_token(db, user.id)
    assert (await client.get("/api/users", headers=user.headers)).status_code == 403
    promoted = await client.patch(f"/api/users/{user.id}", json={"role": "admin"}, headers=admin.headers)
    assert promoted.json()["role"] == "admin"
    assert (await client.get("/api/users", headers=user.headers)).status_code == 200
    assert await live_refresh_tokens(db, user.id) == 1


# -- the last administrator ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"), [("PATCH", {"role": "user"}), ("PATCH", {"is_active": False}), ("DELETE", None)]
)
async def test_the_last_active_admin_stays(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    settings: Settings,
    admin: Account,
    method: str,
    body: dict[str, object] | None,
) -> None:
    retired_admin = await make_account(db, settings, "admin")
    await db.execute("UPDATE users SET is_active = false WHERE id = $1", retired_admin.id)
    response = await client.request(method, f"/api/users/{admin.id}", json=body, headers=admin.headers)
    assert response.status_code == 409
    assert "last active administrator" in response.json()["detail"]
    row = await db.fetchrow("SELECT role, is_active FROM users WHERE id = $1", admin.id)
    assert (row["role"], row["is_active"]) == ("admin", True)

    second = await make_account(db, settings, "admin")
    response = await client.request(method, f"/api/users/{admin.id}", json=body, headers=admin.headers)
    assert response.status_code in (200, 204)
    left = await client.request(method, f"/api/users/{second.id}", json=body, headers=second.headers)
    assert left.status_code == 409


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings, admin: Account
) -> None:
    second = await make_account(db, settings, "admin")
    answers = await asyncio.gather(
        client.patch(f"/api/users/{second.id}", json={"role": "user"}, headers=admin.headers),
        client.patch(f"/api/users/{admin.id}", json={"role": "user"}, headers=second.headers),
    )
    # One wins; the other is refused: 409 if it passed its guard first, 401 if its caller was demoted.
    assert sorted(r.status_code for r in answers) in ([200, 409], [200, 401])
    assert await db.fetchval("SELECT count(*) FROM users WHERE role = 'admin' AND is_active") == 1


# -- delete -------------------------------------------------------------------------------------


async def test_delete_removes_the_account_and_its_sessions(
    client: httpx.AsyncClient, db: asyncpg.Connection, admin: Account, user: Account
) -> None:
    await add_refresh_token(db, user.id)
    response = await client.delete(f"/api/users/{user.id}", headers=admin.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1", user.id) == 0
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens WHERE user_id = $1", user.id) == 0
    assert (await client.get(f"/api/users/{user.id}", headers=user.headers)).status_code == 401
    assert (await client.delete(f"/api/users/{user.id}", headers=admin.headers)).status_code == 404


async def test_deleting_yourself_keeps_the_audit_row_with_your_email(
    client: httpx.AsyncClient, db: asyncpg.Connection, user: Account
) -> None:
    assert (await client.delete(f"/api/users/{user.id}", headers=user.headers)).status_code == 204
    [event] = await events(db, "user.deleted")
    assert event["actor_id"] is None  # the actor's row is gone (ON DELETE SET NULL)
    assert event["actor_email"] == user.email
    assert event["target_id"] == str(user.id)
