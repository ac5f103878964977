"""The caller's own data: the export holds everything about them and nothing of anyone else's;
deleting the account leaves no row of it and ends every token at once."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.settings import Settings
from tests.accounts.conftest import STRONG_PASSWORD, auth, login, register
from tests.accounts.two_factor import enrolled
from tests.conftest import caught_up_first, make_settings, running
from tests.providers.conftest import SUPABASE_SECRET, hs256, supabase_claims

MAX_FAILURES = 5


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path, AUTH_RATE_LIMIT_PER_MINUTE="100000")


async def _user_with_data(client: httpx.AsyncClient, db: asyncpg.Connection, email: str) -> dict[str, str]:
    """A registered user with a task, a risk scan and a session; its first token pair."""
    assert (await register(client, email)).status_code == 201
    pair: dict[str, str] = (await login(client, email)).json()
    me = (await client.get("/api/auth/me", headers=auth(pair["access_token"]))).json()
    created = await client.post(
        f"/api/{me['id']}/tasks", json={"title": f"task of {email}"}, headers=auth(pair["access_token"])
    )
    assert created.status_code == 201
    risks = json.dumps([{"risk": f"risk of {email}", "category": "Financial", "context": "x"}])
    await db.execute(
        "INSERT INTO scans (user_id, filename, data, source) VALUES ($1, $2, $3::jsonb, 'model')",
        uuid.UUID(me["id"]),
        f"{email}.txt",
        risks,
    )
    return {**pair, "id": me["id"]}


async def test_the_export_holds_the_callers_data_and_no_one_elses(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    ada = await _user_with_data(client, db, "ada@example.com")
    await _user_with_data(client, db, "bob@example.com")
    await enrolled(client, ada["access_token"])
    response = await client.get("/api/auth/me/export", headers=auth(ada["access_token"]))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    exported = response.json()
    assert exported["profile"]["email"] == "ada@example.com"
    assert exported["profile"]["mfa_enabled"] is True
    assert exported["two_factor"]["enabled"] is True
    assert exported["two_factor"]["backup_codes_left"] == 10
    assert [task["title"] for task in exported["tasks"]] == ["task of ada@example.com"]
    assert [scan["filename"] for scan in exported["scans"]] == ["ada@example.com.txt"]
    assert exported["scans"][0]["data"][0]["risk"] == "risk of ada@example.com"
    assert len(exported["sessions"]) == 1
    assert exported["sessions"][0]["current"] is True
    actions = {event["action"] for event in exported["audit_events"]}
    assert {"auth.register", "auth.login", "mfa.enrolled", "mfa.confirmed"} <= actions
    assert all(event["by_you"] for event in exported["audit_events"])
    text = response.text
    assert "bob@example.com" not in text
    assert "argon2" not in text
    secret = await db.fetchval("SELECT secret_ciphertext FROM totp_credentials")
    assert secret.hex() not in text
    assert ada["refresh_token"] not in text


async def test_an_admins_action_on_the_account_is_exported_without_the_admin(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    ada = await _user_with_data(client, db, "ada@example.com")
    await register(client, "root@example.com")
    await db.execute("UPDATE users SET role = 'admin' WHERE email = 'root@example.com'")
    admin = (await login(client, "root@example.com")).json()
    renamed = await client.patch(
        f"/api/users/{ada['id']}", json={"full_name": "Ada L."}, headers=auth(admin["access_token"])
    )
    assert renamed.status_code == 200
    exported = (await client.get("/api/auth/me/export", headers=auth(ada["access_token"]))).json()
    by_admin = [event for event in exported["audit_events"] if not event["by_you"]]
    assert [event["action"] for event in by_admin] == ["user.updated"]
    assert by_admin[0]["ip"] is None
    assert "root@example.com" not in json.dumps(exported)


async def _rows_naming(db: asyncpg.Connection, table_names: list[str], needle: str) -> dict[str, int]:
    found = {}
    for table in table_names:
        count = await db.fetchval(
            f"SELECT count(*) FROM {table} AS t WHERE t::text LIKE '%' || $1 || '%'", needle
        )
        if count:
            found[table] = count
    return found


async def test_deleting_the_account_leaves_nothing_and_ends_every_token(
    client: httpx.AsyncClient, db: asyncpg.Connection, table_names: list[str]
) -> None:
    ada = await _user_with_data(client, db, "ada@example.com")
    bob = await _user_with_data(client, db, "bob@example.com")
    _, codes = await enrolled(client, ada["access_token"])
    second = (await login(client)).json()  # an mfa challenge, open when the account goes
    assert second["mfa_required"] is True
    headers = auth(ada["access_token"])
    wrong = await client.request(
        "DELETE", "/api/auth/me", json={"current_password": "wrong"}, headers=headers
    )
    assert wrong.status_code == 400
    missing = await client.request("DELETE", "/api/auth/me", headers=headers)
    assert missing.status_code == 400
    assert await _rows_naming(db, table_names, ada["id"])  # all there before

    deleted = await client.request(
        "DELETE", "/api/auth/me", json={"current_password": STRONG_PASSWORD}, headers=headers
    )
    assert deleted.status_code == 204

    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
    refresh = await client.post("/api/auth/refresh", json={"refresh_token": ada["refresh_token"]})
    assert refresh.status_code == 401
    assert (
        await client.post("/api/auth/2fa/verify", json={"mfa_token": second["mfa_token"], "code": codes[0]})
    ).status_code == 401
    # No table names the person; the audit trail keeps that an account (by id) was deleted.
    assert await _rows_naming(db, table_names, "ada@example.com") == {}
    remaining = await _rows_naming(db, table_names, ada["id"])
    assert set(remaining) <= {"audit_events"}
    leftover = await db.fetch(
        "SELECT actor_id, actor_email, ip, user_agent, target_id, details::text AS details FROM audit_events "
        "WHERE target_id = $1 OR actor_email IS NULL AND action = 'account.deleted'",
        ada["id"],
    )
    assert leftover
    assert all(row["actor_email"] is None and row["ip"] is None for row in leftover)
    assert "account.deleted" in [
        row["action"]
        for row in await db.fetch("SELECT action FROM audit_events WHERE target_id = $1", ada["id"])
    ]
    # Someone else's data is untouched.
    assert (await client.get("/api/auth/me", headers=auth(bob["access_token"]))).status_code == 200
    assert (await login(client)).status_code == 401
    assert await db.fetchval("SELECT count(*) FROM tasks") == 1
    assert await db.fetchval("SELECT count(*) FROM scans") == 1


async def test_wrong_passwords_on_delete_count_on_the_lockout(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    headers = auth(tokens["access_token"])
    statuses = [
        (
            await client.request(
                "DELETE", "/api/auth/me", json={"current_password": "wrong"}, headers=headers
            )
        ).status_code
        for _ in range(MAX_FAILURES + 1)
    ]
    assert statuses == [400] * MAX_FAILURES + [429]
    right = await client.request(
        "DELETE", "/api/auth/me", json={"current_password": STRONG_PASSWORD}, headers=headers
    )
    assert right.status_code == 429


async def test_the_last_admin_cannot_delete_itself(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    await register(client)
    await db.execute("UPDATE users SET role = 'admin'")
    access = (await login(client)).json()["access_token"]
    refused = await client.request(
        "DELETE", "/api/auth/me", json={"current_password": STRONG_PASSWORD}, headers=auth(access)
    )
    assert refused.status_code == 409


async def test_a_provider_account_deletes_itself_with_a_fresh_sign_in(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, tmp_path, SUPABASE_JWT_SECRET=SUPABASE_SECRET)
    claims = supabase_claims("https://abcdefgh.supabase.co")
    stale = hs256({**claims, "iat": int(time.time()) - 600}, SUPABASE_SECRET)
    fresh = hs256(claims, SUPABASE_SECRET)
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", event_hooks=caught_up_first(app)
        ) as client:
            me = (await client.get("/api/auth/me", headers=auth(stale))).json()
            refused = await client.request("DELETE", "/api/auth/me", headers=auth(stale))
            assert refused.status_code == 403
            assert "sign in again" in refused.json()["detail"]
            deleted = await client.request("DELETE", "/api/auth/me", headers=auth(fresh))
            assert deleted.status_code == 204
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1", uuid.UUID(me["id"])) == 0
    assert await db.fetchval("SELECT count(*) FROM identities") == 0
