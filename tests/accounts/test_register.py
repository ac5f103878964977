"""Registration: the account, the email rules, the password policy and the audit event."""

from pathlib import Path

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.security.passwords import common_passwords
from service.settings import SettingsError
from tests.accounts.conftest import STRONG_PASSWORD, auth, register
from tests.conftest import make_settings, running

USER_FIELDS = {
    "id",
    "email",
    "full_name",
    "role",
    "is_active",
    "provider",
    "email_verified",
    "created_at",
    "updated_at",
}


async def test_register_returns_the_user_and_never_a_hash(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/auth/register",
        json={"email": "Ada.Lovelace@Example.com", "password": STRONG_PASSWORD, "full_name": "Ada"},
    )
    assert response.status_code == 201
    user = response.json()
    assert set(user) == USER_FIELDS
    assert user["email"] == "ada.lovelace@example.com"
    assert user["full_name"] == "Ada"
    assert (user["role"], user["is_active"], user["provider"]) == ("user", True, "local")
    assert STRONG_PASSWORD not in response.text
    stored = await db.fetchval("SELECT password_hash FROM users WHERE id = $1::uuid", user["id"])
    assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$")


async def test_register_is_also_served_under_v1(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": "v1@example.com", "password": STRONG_PASSWORD}
    )
    assert response.status_code == 201


@pytest.mark.parametrize("variant", ["ada@example.com", "ADA@EXAMPLE.COM", "Ada@Example.Com"])
async def test_duplicate_email_in_any_case_is_409(client: httpx.AsyncClient, variant: str) -> None:
    assert (await register(client, "ada@example.com")).status_code == 201
    response = await register(client, variant)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "an account with this email already exists"


async def test_a_malformed_email_is_a_400_naming_the_field(client: httpx.AsyncClient) -> None:
    for email in (
        "not-an-email",
        "ada@localhost",
        "ada @example.com",
        "@example.com",
        "ada@exa_mple.com",
        "a\x00@b.co",
    ):
        response = await register(client, email)
        assert response.status_code == 400, email
        body = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert body["errors"][0]["field"] == "email", email
        assert body["detail"].startswith("email:"), email


async def test_an_email_over_320_characters_is_refused(client: httpx.AsyncClient) -> None:
    response = await register(client, "a" * 64 + "@" + "b" * 60 + ".com" + ".example" * 25)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "email"


async def test_the_password_policy(client: httpx.AsyncClient) -> None:
    refused = [
        ("short12", "at least 8 characters"),
        ("password1", "too common"),
        ("Password1", "too common"),
        ("x" * 129, "length <= 128"),
    ]
    for password, reason in refused:
        response = await register(client, password=password)
        assert response.status_code == 400, password
        body = response.json()
        assert body["errors"][0]["field"] == "password"
        assert reason in body["detail"], password


async def test_a_huge_password_is_refused_while_decoding(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await register(client, password="p" * 5_000)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "password"
    # Past the auth routes' 8 KiB body limit nothing is decoded at all.
    assert (await register(client, password="p" * 900_000)).status_code == 413
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_any_long_enough_uncommon_password_is_accepted(client: httpx.AsyncClient) -> None:
    accepted = ["x7#" * 42 + "ab", "pässwörd mit ümläuten", "        spaces  ", "12345678901"]
    for index, password in enumerate(accepted):
        assert (await register(client, f"user{index}@example.com", password)).status_code == 201, password


def test_the_common_password_list_is_real_and_large() -> None:
    common = common_passwords()
    assert len(common) >= 10_000
    assert {"123456", "password", "qwerty", "iloveyou", "trustno1"} <= common


async def test_full_name_rejects_control_characters(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/register",
        json={"email": "ada@example.com", "password": STRONG_PASSWORD, "full_name": "Ada\x00"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "full_name"


async def test_register_is_audited(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    user = (await register(client)).json()
    event = await db.fetchrow("SELECT * FROM audit_events WHERE action = 'auth.register'")
    assert str(event["actor_id"]) == user["id"]
    assert event["target_id"] == user["id"]
    assert event["ip"] == "127.0.0.1"


async def test_seed_004_curl_sequence_works_against_a_development_server(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Seed 004's sample password `test123` is short and common: the development default policy
    (lenient) accepts it, so the seed's curl commands work verbatim against `service serve`."""
    settings = make_settings(database_url, tmp_path, ENVIRONMENT="development")
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            registered = await http.post(
                "/api/auth/register",
                content=b'{"email":"test@test.com","password":"test123"}',
                headers={"Content-Type": "application/json"},
            )
            assert registered.status_code == 201
            logged_in = await http.post(
                "/api/auth/login",
                content=b"username=test@test.com&password=test123",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert logged_in.status_code == 200
            token = logged_in.json()
            assert token["token_type"] == "bearer"
            me = await http.get("/api/auth/me", headers=auth(token["access_token"]))
            assert me.json()["email"] == "test@test.com"


def test_password_policy_defaults_to_strict_outside_development(database_url: str, tmp_path: Path) -> None:
    assert make_settings(database_url, tmp_path).strict_passwords
    assert not make_settings(database_url, tmp_path, ENVIRONMENT="development").strict_passwords
    assert make_settings(
        database_url, tmp_path, ENVIRONMENT="development", PASSWORD_POLICY="strict"
    ).strict_passwords
    with pytest.raises(SettingsError, match="PASSWORD_POLICY"):
        make_settings(database_url, tmp_path, ENVIRONMENT="production", PASSWORD_POLICY="lenient")
