"""Login: form and JSON, one answer for every wrong credential, lockout, rehash, and a free event loop."""

import asyncio
import os
import sys
import threading
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.security import passwords
from service.security.tokens import verify_access_token
from service.settings import Settings
from tests.accounts.conftest import STRONG_PASSWORD, auth, login, register
from tests.conftest import make_settings, running


async def test_form_login_returns_a_bearer_pair(client: httpx.AsyncClient, settings: Settings) -> None:
    user = (await register(client)).json()
    response = await login(client)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    assert verify_access_token(settings, body["access_token"]).subject == user["id"]
    assert len(body["refresh_token"]) >= 43  # 32 random bytes, base64url
    me = await client.get("/api/auth/me", headers=auth(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


@pytest.mark.parametrize("name_field", ["email", "username"])
async def test_json_login(client: httpx.AsyncClient, name_field: str) -> None:
    await register(client)
    response = await client.post(
        "/api/v1/auth/login", json={name_field: "ada@example.com", "password": STRONG_PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"


async def test_the_oauth2_form_fields_of_swagger_ui_are_accepted(client: httpx.AsyncClient) -> None:
    await register(client)
    response = await client.post(
        "/api/auth/login",
        data={
            "grant_type": "password",
            "username": "ada@example.com",
            "password": STRONG_PASSWORD,
            "scope": "",
        },
    )
    assert response.status_code == 200


async def test_email_is_matched_regardless_of_case_and_spaces(client: httpx.AsyncClient) -> None:
    await register(client, "Ada@Example.com")
    assert (await login(client, "  ADA@example.COM ")).status_code == 200


async def test_unknown_email_and_wrong_password_answer_alike(client: httpx.AsyncClient) -> None:
    await register(client)
    wrong_password = await login(client, password="not the password at all")
    unknown_email = await login(client, email="nobody@example.com")
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"
    assert wrong_password.json()["detail"] == unknown_email.json()["detail"] == "incorrect email or password"


async def test_an_account_without_a_password_cannot_log_in(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await db.execute("INSERT INTO users (email, provider) VALUES ('ext@example.com', 'supabase')")
    await db.execute("INSERT INTO users (email) VALUES ('nopass@example.com')")
    for email in ("ext@example.com", "nopass@example.com"):
        response = await login(client, email=email, password="")
        assert response.status_code == 400
        response = await login(client, email=email, password="anything at all")
        assert response.status_code == 401


async def test_an_inactive_account_cannot_log_in(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    await register(client)
    await db.execute("UPDATE users SET is_active = false")
    response = await login(client)
    assert response.status_code == 401
    assert response.json()["detail"] == "account is not active"


BAD_LOGIN_BODIES: list[tuple[bytes, str, int, str | None]] = [
    (b"username=ada%40example.com", "application/x-www-form-urlencoded", 400, "password"),
    (b'{"password": "x"}', "application/json", 400, "email"),
    (b'{"email": "a@b.co", "password": "x", "remember": true}', "application/json", 400, "remember"),
    (b'{"email": "a@b.co", "password": 5}', "application/json", 400, "password"),
    (b'{"email": "a@b.co", "password": "' + b"x" * 129 + b'"}', "application/json", 400, "password"),
    (b"{not json", "application/json", 400, None),
    (b"username=a&password=b", "text/plain", 415, None),
    (b"", "", 415, None),
]


async def test_bad_login_bodies(client: httpx.AsyncClient) -> None:
    for content, content_type, status, field in BAD_LOGIN_BODIES:
        response = await client.post(
            "/api/auth/login", content=content, headers={"Content-Type": content_type}
        )
        assert response.status_code == status, content
        body = response.json()
        assert body["detail"]
        if field is not None:
            assert body["errors"][0]["field"] == field, content


async def test_a_nul_in_the_username_is_a_400(client: httpx.AsyncClient) -> None:
    response = await login(client, email="ada\x00@example.com")
    assert response.status_code == 400


async def test_login_and_failures_are_audited(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    user = (await register(client)).json()
    await login(client, password="wrong password here")
    await login(client, email="ghost@example.com")
    await login(client)
    events = await db.fetch(
        "SELECT action, actor_id, actor_email, details->>'reason' AS reason FROM audit_events ORDER BY id"
    )
    assert [e["action"] for e in events] == [
        "auth.register",
        "auth.login_failed",
        "auth.login_failed",
        "auth.login",
    ]
    wrong, ghost, success = events[1:]
    assert (str(wrong["actor_id"]), wrong["reason"]) == (user["id"], "wrong_password")
    assert (ghost["actor_id"], ghost["actor_email"], ghost["reason"]) == (
        None,
        "ghost@example.com",
        "unknown_email",
    )
    assert str(success["actor_id"]) == user["id"]


# Lockout


async def _fail(client: httpx.AsyncClient, email: str, times: int) -> None:
    for _ in range(times):
        assert (await login(client, email=email, password="wrong password here")).status_code == 401


async def test_lockout_after_five_failures_even_for_the_right_password(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await register(client)
    await _fail(client, "ada@example.com", 5)
    locked = await login(client)
    assert locked.status_code == 429
    assert 14 * 60 < int(locked.headers["retry-after"]) <= 15 * 60
    assert locked.headers["content-type"] == "application/problem+json"
    assert "try again in 15 minutes" in locked.json()["detail"]
    assert (await login(client, email="ADA@example.com ")).status_code == 429
    actions = [r["action"] for r in await db.fetch("SELECT action FROM audit_events ORDER BY id")]
    assert actions.count("auth.login_failed") == 5
    assert actions.count("auth.lockout") == 1


async def test_lockout_applies_to_unknown_emails_alike(client: httpx.AsyncClient) -> None:
    await _fail(client, "ghost@example.com", 5)
    locked = await login(client, email="ghost@example.com")
    assert locked.status_code == 429
    assert "retry-after" in locked.headers
    assert (await login(client, email="someone-else@example.com")).status_code == 401


async def test_a_success_resets_the_count(client: httpx.AsyncClient) -> None:
    await register(client)
    await _fail(client, "ada@example.com", 4)
    assert (await login(client)).status_code == 200
    await _fail(client, "ada@example.com", 4)
    assert (await login(client)).status_code == 200


async def test_the_lock_ends_after_its_time(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    await register(client)
    await _fail(client, "ada@example.com", 5)
    assert (await login(client)).status_code == 429
    await db.execute("UPDATE login_failures SET locked_until = now() - interval '1 second'")
    await _fail(client, "ada@example.com", 1)
    assert await db.fetchval("SELECT failures FROM login_failures") == 1
    assert (await login(client)).status_code == 200


async def test_old_failures_are_forgotten(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    await _fail(client, "ghost@example.com", 4)
    await db.execute("UPDATE login_failures SET last_failed_at = now() - interval '16 minutes'")
    await _fail(client, "ghost@example.com", 1)
    assert await db.fetchval("SELECT failures FROM login_failures") == 1


async def test_lockout_limits_come_from_settings(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, LOGIN_MAX_FAILURES="2", LOGIN_LOCKOUT_MINUTES="1")
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await _fail(http, "ghost@example.com", 2)
            locked = await login(http, email="ghost@example.com")
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) <= 60
    assert locked.json()["detail"].endswith("try again in 1 minute")


# Hashing


async def test_login_rehashes_when_the_parameters_change(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    await register(client)
    old_hash = await db.fetchval("SELECT password_hash FROM users")
    assert "$m=8192,t=1,p=1$" in old_hash
    stronger = make_settings(database_url, tmp_path, ARGON2_TIME_COST="2", ARGON2_MEMORY_KIB="9216")
    app = create_app(stronger)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await login(http)).status_code == 200
            new_hash = await db.fetchval("SELECT password_hash FROM users")
            assert "$m=9216,t=2,p=1$" in new_hash
            assert (await login(http)).status_code == 200
    assert await db.fetchval("SELECT password_hash FROM users") == new_hash
    rehashed = await db.fetch(
        "SELECT details->>'rehashed' AS r FROM audit_events WHERE action = 'auth.login' ORDER BY id"
    )
    assert [row["r"] for row in rehashed] == ["true", "false"]
    assert (await login(client)).status_code == 200


def _argon2_running_off_the_loop() -> bool:
    """Whether some thread other than this one (the event loop's) is inside argon2 right now."""
    frames = sys._current_frames()
    for thread in threading.enumerate():
        if thread is threading.current_thread():
            continue
        frame = frames.get(thread.ident or -1)
        while frame is not None:
            if "argon2" in frame.f_code.co_filename:
                return True
            frame = frame.f_back
    return False


async def test_hashing_does_not_block_the_event_loop(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    costly = make_settings(database_url, tmp_path, ARGON2_MEMORY_KIB="65536", ARGON2_TIME_COST="4")
    app = create_app(costly)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            logging_in = asyncio.create_task(login(http, email="ghost@example.com"))
            while not _argon2_running_off_the_loop():
                assert not logging_in.done(), "the login finished without hashing on a worker thread"
                await asyncio.sleep(0.001)
            health = await http.get("/health")
            assert health.status_code == 200
            assert not logging_in.done(), "/health was answered while the login was still hashing"
            assert (await logging_in).status_code == 401


async def test_password_hashing_yields_the_cpu_to_requests() -> None:
    """argon2 runs on threads ten steps nicer than the event loop, so a burst of logins cannot
    starve every other request (bench/run.py's login storm measures the effect)."""
    loop_niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    hashing_niceness = await passwords._off_the_loop(
        lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    )
    assert hashing_niceness == min(19, loop_niceness + passwords.HASHING_THREAD_NICENESS)
