"""Two-factor sign-in (TOTP, RFC 6238) end to end with real codes (pyotp), against a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import httpx
import pyotp
import pytest

from service.app import create_app
from service.settings import Settings
from tests.accounts.conftest import STRONG_PASSWORD, auth, login, register
from tests.accounts.two_factor import challenge, code_at, enrolled, verify, wait_clear_of_step_boundary
from tests.conftest import bearer, caught_up_first, make_settings, make_user, running

MAX_FAILURES = 5


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Every request of a test comes from one address: the per-IP limit is out of the way."""
    return make_settings(database_url, tmp_path, AUTH_RATE_LIMIT_PER_MINUTE="100000")


async def _actions(db: asyncpg.Connection) -> list[str]:
    return [row["action"] for row in await db.fetch("SELECT action FROM audit_events ORDER BY id")]


async def test_enrol_confirm_then_log_in_with_a_code(
    client: httpx.AsyncClient, tokens: dict[str, str], db: asyncpg.Connection
) -> None:
    access = tokens["access_token"]
    enrolment = await client.post(
        "/api/auth/2fa/totp", json={"current_password": STRONG_PASSWORD}, headers=auth(access)
    )
    assert enrolment.status_code == 200
    assert enrolment.headers["cache-control"] == "no-store"
    secret = enrolment.json()["secret"]
    uri = enrolment.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/")
    assert f"secret={secret}" in uri
    assert "ada%40example.com" in uri
    assert pyotp.parse_uri(uri).secret == secret
    me = (await client.get("/api/auth/me", headers=auth(access))).json()
    assert me["mfa_enabled"] is False  # pending until confirmed

    wait_clear_of_step_boundary()
    wrong = await client.post("/api/auth/2fa/totp/confirm", json={"code": "000000"}, headers=auth(access))
    assert wrong.status_code == 400
    confirmed = await client.post(
        "/api/auth/2fa/totp/confirm", json={"code": code_at(secret, 0)}, headers=auth(access)
    )
    assert confirmed.status_code == 200
    codes = confirmed.json()["backup_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert (await client.get("/api/auth/me", headers=auth(access))).json()["mfa_enabled"] is True

    password_step = await login(client)
    assert password_step.status_code == 200
    body = password_step.json()
    assert body["mfa_required"] is True
    assert body["expires_in"] == 300
    assert "access_token" not in body
    assert "refresh_token" not in body
    assert password_step.headers["cache-control"] == "no-store"

    signed_in = await verify(client, body["mfa_token"], code_at(secret, 1))
    assert signed_in.status_code == 200, signed_in.text
    pair = signed_in.json()
    assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert signed_in.headers["cache-control"] == "no-store"
    assert (await client.get("/api/auth/me", headers=auth(pair["access_token"]))).status_code == 200
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200

    actions = await _actions(db)
    for action in ("mfa.enrolled", "mfa.confirmed", "auth.mfa_required", "mfa.verify_failed"):
        assert action in actions, actions
    details = await db.fetchval(
        "SELECT details::text FROM audit_events WHERE action = 'auth.login' ORDER BY id DESC LIMIT 1"
    )
    assert json.loads(details) == {"mfa": "totp"}


async def test_a_code_is_accepted_once(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    secret, _ = await enrolled(client, tokens["access_token"])
    code = code_at(secret, 0)
    first = await verify(client, (await challenge(client))["mfa_token"], code)
    assert first.status_code == 200
    replay = await verify(client, (await challenge(client))["mfa_token"], code)
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]
    # An older step than the last accepted one is a replay too.
    older = await verify(client, (await challenge(client))["mfa_token"], code_at(secret, -1))
    assert older.status_code == 401


async def test_backup_codes_sign_in_once_each(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    _, codes = await enrolled(client, tokens["access_token"])
    typed = codes[0].lower().replace("-", " ")  # as someone types it
    assert (await verify(client, (await challenge(client))["mfa_token"], typed)).status_code == 200
    again = await verify(client, (await challenge(client))["mfa_token"], codes[0])
    assert again.status_code == 401
    assert (await verify(client, (await challenge(client))["mfa_token"], codes[1])).status_code == 200


async def test_the_mfa_token_is_single_use_and_short_lived(
    client: httpx.AsyncClient, tokens: dict[str, str], db: asyncpg.Connection
) -> None:
    secret, codes = await enrolled(client, tokens["access_token"])
    mfa_token = (await challenge(client))["mfa_token"]
    assert (await verify(client, mfa_token, code_at(secret, 0))).status_code == 200
    reused = await verify(client, mfa_token, codes[0])
    assert reused.status_code == 401
    assert "log in again" in reused.json()["detail"]

    expiring = (await challenge(client))["mfa_token"]
    await db.execute(
        "UPDATE mfa_challenges SET expires_at = now() - interval '1 second' WHERE used_at IS NULL"
    )
    assert (await verify(client, expiring, codes[1])).status_code == 401
    assert (await verify(client, "not-a-token", codes[1])).status_code == 401


async def test_wrong_codes_count_on_the_login_lockout(
    client: httpx.AsyncClient, tokens: dict[str, str], db: asyncpg.Connection
) -> None:
    secret, _ = await enrolled(client, tokens["access_token"])
    mfa_token = (await challenge(client))["mfa_token"]  # the password step is attempt 1
    statuses = [(await verify(client, mfa_token, "000000")).status_code for _ in range(MAX_FAILURES)]
    assert statuses == [401] * (MAX_FAILURES - 1) + [429]
    locked = await verify(client, mfa_token, code_at(secret, 0))  # even the right code now
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert (await login(client)).status_code == 429  # the same lock as the password's
    actions = await _actions(db)
    assert actions.count("mfa.verify_failed") == MAX_FAILURES - 1
    assert "auth.lockout" in actions


async def test_a_correct_password_does_not_reset_the_count_of_wrong_codes(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    """Otherwise someone holding the password could log in between guesses to keep guessing."""
    await enrolled(client, tokens["access_token"])
    answers: list[int] = []
    while len(answers) <= MAX_FAILURES:
        password_step = await login(client)
        answers.append(password_step.status_code)
        if password_step.status_code != 200:
            break
        answers.append((await verify(client, password_step.json()["mfa_token"], "000000")).status_code)
    # Passwords and codes share one budget of MAX_FAILURES attempts until a code is accepted.
    assert answers == [200, 401, 200, 401, 200, 429]
    assert (await login(client)).status_code == 429


async def test_secrets_and_codes_are_not_readable_in_the_database(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    secret, codes = await enrolled(client, tokens["access_token"])
    row = await db.fetchrow("SELECT * FROM totp_credentials")
    dumped = repr(dict(row)).encode() + bytes(row["secret_ciphertext"])
    assert secret.encode() not in dumped
    assert pyotp.TOTP(secret).byte_secret() not in bytes(row["secret_ciphertext"])
    stored = b"".join(bytes(r["code_hash"]) for r in await db.fetch("SELECT code_hash FROM backup_codes"))
    for code in codes:
        assert code.replace("-", "").encode() not in stored
    # Another key cannot use the secret: the server says so instead of accepting any code.
    other = make_settings(database_url, tmp_path, MFA_ENCRYPTION_KEY="another key " + "k" * 40)
    async with running(create_app(other)) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as elsewhere:
            mfa_token = (await challenge(elsewhere))["mfa_token"]
            refused = await verify(elsewhere, mfa_token, code_at(secret, 0))
    assert refused.status_code == 503
    assert "MFA_ENCRYPTION_KEY" in refused.json()["detail"]


async def test_turning_two_factor_off(
    client: httpx.AsyncClient, tokens: dict[str, str], db: asyncpg.Connection
) -> None:
    access = tokens["access_token"]
    headers = auth(access)
    off = await client.request("DELETE", "/api/auth/2fa/totp", json={"code": "000000"}, headers=headers)
    assert off.status_code == 409  # not on
    secret, _codes = await enrolled(client, access)
    neither = await client.request("DELETE", "/api/auth/2fa/totp", json={}, headers=headers)
    assert neither.status_code == 400
    wrong = await client.request(
        "DELETE", "/api/auth/2fa/totp", json={"current_password": "wrong"}, headers=headers
    )
    assert wrong.status_code == 400
    off = await client.request(
        "DELETE", "/api/auth/2fa/totp", json={"code": code_at(secret, 0)}, headers=headers
    )
    assert off.status_code == 204
    assert (await client.get("/api/auth/me", headers=headers)).json()["mfa_enabled"] is False
    assert await db.fetchval("SELECT count(*) FROM backup_codes") == 0
    signed_in = await login(client)
    assert "access_token" in signed_in.json()
    # On again, and off with the password this time.
    await enrolled(client, access)
    off = await client.request(
        "DELETE", "/api/auth/2fa/totp", json={"current_password": STRONG_PASSWORD}, headers=headers
    )
    assert off.status_code == 204
    assert "mfa.disabled" in await _actions(db)
    # Each time, a notice to the account's address went into the outbox with the change.
    notices = await db.fetch("SELECT recipient FROM mail_messages WHERE kind = 'two_factor_disabled'")
    assert len(notices) == 2
    email = await db.fetchval(
        "SELECT email FROM users WHERE id = (SELECT user_id FROM refresh_tokens LIMIT 1)"
    )
    assert {row["recipient"] for row in notices} == {email}


async def test_regenerated_backup_codes_replace_the_old_ones(
    client: httpx.AsyncClient, tokens: dict[str, str], db: asyncpg.Connection
) -> None:
    headers = auth(tokens["access_token"])
    _, old = await enrolled(client, tokens["access_token"])
    response = await client.post("/api/auth/2fa/backup-codes", json={"code": old[0]}, headers=headers)
    assert response.status_code == 200
    new = response.json()["backup_codes"]
    assert len(new) == 10
    assert not set(new) & set(old)
    assert (await verify(client, (await challenge(client))["mfa_token"], old[1])).status_code == 401
    assert (await verify(client, (await challenge(client))["mfa_token"], new[0])).status_code == 200
    by_password = await client.post(
        "/api/auth/2fa/backup-codes", json={"current_password": STRONG_PASSWORD}, headers=headers
    )
    assert by_password.status_code == 200
    assert "mfa.backup_codes_regenerated" in await _actions(db)


async def test_enrolment_needs_the_password_and_happens_once(
    client: httpx.AsyncClient, tokens: dict[str, str], db: asyncpg.Connection, settings: Settings
) -> None:
    headers = auth(tokens["access_token"])
    wrong = await client.post("/api/auth/2fa/totp", json={"current_password": "wrong"}, headers=headers)
    assert wrong.status_code == 400
    await enrolled(client, tokens["access_token"])
    again = await client.post(
        "/api/auth/2fa/totp", json={"current_password": STRONG_PASSWORD}, headers=headers
    )
    assert again.status_code == 409
    provider_user = await make_user(db, "sso@example.com", provider="supabase")
    refused = await client.post(
        "/api/auth/2fa/totp", json={"current_password": "x"}, headers=bearer(settings, provider_user)
    )
    assert refused.status_code == 400
    assert "supabase" in refused.json()["detail"]


async def test_with_auth_cookies_verify_sets_the_refresh_cookie(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, tmp_path, AUTH_COOKIES="on", AUTH_RATE_LIMIT_PER_MINUTE="100000")
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", event_hooks=caught_up_first(app)
        ) as client:
            assert (await register(client)).status_code == 201
            first = (await login(client)).json()
            secret, _ = await enrolled(client, first["access_token"])
            challenged = await login(client)
            assert "set-cookie" not in challenged.headers
            signed_in = await verify(client, challenged.json()["mfa_token"], code_at(secret, 0))
    assert signed_in.status_code == 200
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith(f"refresh_token={signed_in.json()['refresh_token']};")
    assert "HttpOnly" in cookie
    assert "Path=/api/auth" in cookie


async def test_admins_can_be_required_to_use_two_factor(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    settings = make_settings(
        database_url, tmp_path, REQUIRE_MFA_FOR_ADMINS="true", AUTH_RATE_LIMIT_PER_MINUTE="100000"
    )
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", event_hooks=caught_up_first(app)
        ) as client:
            assert (await register(client)).status_code == 201
            await db.execute("UPDATE users SET role = 'admin'")
            plain_user = await make_user(db)
            access = (await login(client)).json()["access_token"]
            headers = auth(access)
            refused = await client.get("/api/users", headers=headers)
            assert refused.status_code == 403
            assert "two-factor" in refused.json()["detail"]
            assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
            assert (await client.get("/api/auth/sessions", headers=headers)).status_code == 403
            # A user who is not an admin is not held back.
            assert (
                await client.get("/api/auth/sessions", headers=bearer(settings, plain_user))
            ).status_code == 200
            secret, _ = await enrolled(client, access)
            assert (await client.get("/api/users", headers=headers)).status_code == 200
            mfa_token = (await challenge(client))["mfa_token"]
            assert (await verify(client, mfa_token, code_at(secret, 0))).status_code == 200
            assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204


async def test_production_needs_a_key_unless_two_factor_is_off(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    from service.settings import SettingsError

    with pytest.raises(SettingsError, match=r"^missing MFA_ENCRYPTION_KEY: .*TWO_FACTOR=off"):
        make_settings(database_url, tmp_path, ENVIRONMENT="production", MFA_ENCRYPTION_KEY="")
    with pytest.raises(SettingsError, match="MFA_ENCRYPTION_KEY"):
        make_settings(database_url, tmp_path, MFA_ENCRYPTION_KEY="short")
    with pytest.raises(SettingsError, match=r"REQUIRE_MFA_FOR_ADMINS.*TWO_FACTOR=on"):
        make_settings(database_url, tmp_path, TWO_FACTOR="off", REQUIRE_MFA_FOR_ADMINS="true")
    settings = make_settings(
        database_url, tmp_path, ENVIRONMENT="production", MFA_ENCRYPTION_KEY="", TWO_FACTOR="off"
    )
    user_id = await make_user(db)
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            enrol = await client.post(
                "/api/auth/2fa/totp", json={"current_password": "x"}, headers=bearer(settings, user_id)
            )
            confirm = await client.post(
                "/api/auth/2fa/totp/confirm", json={"code": "123456"}, headers=bearer(settings, user_id)
            )
    for response in (enrol, confirm):
        assert response.status_code == 503
        assert "TWO_FACTOR=off" in response.json()["detail"]
        assert response.headers["retry-after"]
