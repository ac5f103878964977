"""Refresh: rotation, reuse detection, concurrency, lifetime, and storage only as a hash."""

import asyncio
import hashlib
from datetime import timedelta

import asyncpg
import httpx

from tests.accounts.conftest import auth, login


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})


async def test_refresh_rotates_the_pair(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    response = await _refresh(client, tokens["refresh_token"])
    assert response.status_code == 200
    fresh = response.json()
    assert set(fresh) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert fresh["token_type"] == "bearer"
    assert fresh["refresh_token"] != tokens["refresh_token"]
    assert fresh["access_token"] != tokens["access_token"]
    assert (await client.get("/api/auth/me", headers=auth(fresh["access_token"]))).status_code == 200
    again = await _refresh(client, fresh["refresh_token"])
    assert again.status_code == 200


async def test_refresh_is_also_served_under_v1(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200


async def test_reusing_a_spent_token_revokes_the_whole_family(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    other_session = (await login(client)).json()
    successor = (await _refresh(client, tokens["refresh_token"])).json()

    replayed = await _refresh(client, tokens["refresh_token"])
    assert replayed.status_code == 401
    assert replayed.headers["www-authenticate"] == "Bearer"
    assert "already used" in replayed.json()["detail"]

    assert (await _refresh(client, successor["refresh_token"])).status_code == 401
    assert (await _refresh(client, other_session["refresh_token"])).status_code == 200, (
        "other sessions live on"
    )
    event = await db.fetchrow("SELECT * FROM audit_events WHERE action = 'auth.refresh_reuse_detected'")
    assert event is not None
    assert event["target_type"] == "session"


async def test_two_concurrent_refreshes_of_one_token_exactly_one_succeeds(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    first, second = await asyncio.gather(
        _refresh(client, tokens["refresh_token"]), _refresh(client, tokens["refresh_token"])
    )
    assert sorted([first.status_code, second.status_code]) == [200, 401]


async def test_the_family_has_an_absolute_lifetime(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    started = await db.fetchrow("SELECT issued_at, expires_at FROM refresh_tokens")
    assert started["expires_at"] - started["issued_at"] == timedelta(days=30)
    fresh = (await _refresh(client, tokens["refresh_token"])).json()
    ends = await db.fetch("SELECT DISTINCT expires_at FROM refresh_tokens")
    assert [row["expires_at"] for row in ends] == [started["expires_at"]], "rotation never extends the family"

    await db.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    expired = await _refresh(client, fresh["refresh_token"])
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]


async def test_refresh_tokens_are_stored_only_as_sha256(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    row = await db.fetchrow("SELECT * FROM refresh_tokens")
    assert row["token_hash"] == hashlib.sha256(tokens["refresh_token"].encode()).digest()
    assert tokens["refresh_token"] not in str(dict(row))
    assert row["user_agent"] == "python-httpx/" + httpx.__version__
    assert row["ip"] == "127.0.0.1"


async def test_unknown_or_malformed_refresh_tokens_are_refused(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    assert (await _refresh(client, "x" * 43)).status_code == 401
    assert (await _refresh(client, tokens["access_token"])).status_code == 401, (
        "an access token cannot refresh"
    )
    assert (await _refresh(client, "")).status_code == 400
    missing = await client.post("/api/auth/refresh", json={})
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "refresh_token"
