"""Better Auth tokens: the jwt plugin's JWKS (every algorithm it offers) and seed 002's HS256 secret."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar

from service.security.providers import BETTER_AUTH_JWKS_PATH
from service.settings import SettingsError
from tests.conftest import make_settings
from tests.providers.conftest import (
    BETTER_AUTH_ALGORITHMS,
    BETTER_AUTH_SECRET,
    Clock,
    JwksServer,
    SigningKey,
    app_with_clock,
    better_auth_claims,
    caller_for,
    hs256,
    refusal_of,
    seed_002_claims,
    serving,
)


@pytest.mark.parametrize("algorithm", BETTER_AUTH_ALGORITHMS)
async def test_a_jwt_plugin_token_signs_in_a_new_better_auth_user(
    app: Litestar,
    db: asyncpg.Connection,
    better_auth_server: JwksServer,
    better_auth_keys: dict[str, SigningKey],
    algorithm: str,
) -> None:
    claims = better_auth_claims(better_auth_server.url)

    caller = await caller_for(app, better_auth_keys[algorithm].sign(claims))

    assert caller.provider == "better-auth"
    assert caller.subject == claims["sub"]
    assert caller.email == claims["email"]
    assert caller.role == "user"
    user = await db.fetchrow("SELECT provider, password_hash FROM users WHERE id = $1", caller.id)
    assert dict(user) == {"provider": "better-auth", "password_hash": None}


async def test_seed_002_hs256_tokens_verify_with_the_shared_secret(
    app: Litestar, db: asyncpg.Connection, better_auth_server: JwksServer
) -> None:
    claims = seed_002_claims()
    caller = await caller_for(app, hs256(claims, BETTER_AUTH_SECRET))
    assert caller.provider == "better-auth"
    assert caller.subject == claims["sub"]
    assert caller.email is None
    assert better_auth_server.fetches == 0, "a shared-secret token needs no key set"
    assert await db.fetchval("SELECT provider FROM users WHERE id = $1", caller.id) == "better-auth"


async def test_the_shared_secret_alone_is_enough(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, clock: Clock
) -> None:
    settings = make_settings(database_url, tmp_path, BETTER_AUTH_SECRET=BETTER_AUTH_SECRET)
    async with app_with_clock(settings, clock) as app:
        claims = seed_002_claims(email="seed@example.com")
        caller = await caller_for(app, hs256(claims, BETTER_AUTH_SECRET))
        assert (caller.provider, caller.subject, caller.email) == (
            "better-auth",
            claims["sub"],
            "seed@example.com",
        )


async def test_shared_secret_tokens_under_the_better_auth_issuer_also_verify(
    app: Litestar, better_auth_server: JwksServer
) -> None:
    claims = better_auth_claims(better_auth_server.url)
    caller = await caller_for(app, hs256(claims, BETTER_AUTH_SECRET))
    assert caller.provider == "better-auth"


@pytest.mark.parametrize(
    ("claims_change", "detail"),
    [
        ({"sub": None}, "sub"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
        ({"exp": 1_700_000_000}, "expired"),
        ({"aud": "someone-else"}, "audience"),
    ],
)
async def test_seed_002_tokens_need_sub_exp_and_iat(
    app: Litestar, claims_change: dict[str, object], detail: str
) -> None:
    refused = await refusal_of(app, hs256(seed_002_claims(**claims_change), BETTER_AUTH_SECRET))
    assert refused.status_code == 401
    assert detail in refused.detail


async def test_a_wrong_shared_secret_is_401(app: Litestar) -> None:
    token = hs256(seed_002_claims(), "a-different-frontend-secret-" + "d" * 20)
    assert (await refusal_of(app, token)).status_code == 401


@pytest.mark.parametrize(
    ("claims_change", "detail"),
    [
        ({"aud": "http://localhost:9999"}, "audience"),
        ({"aud": None}, "aud"),
        ({"sub": None}, "sub"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
        ({"exp": 1_700_000_000}, "expired"),
    ],
)
async def test_a_jwt_plugin_token_with_a_bad_claim_is_401(
    app: Litestar,
    better_auth_server: JwksServer,
    better_auth_keys: dict[str, SigningKey],
    claims_change: dict[str, object],
    detail: str,
) -> None:
    token = better_auth_keys["EdDSA"].sign(better_auth_claims(better_auth_server.url, **claims_change))
    refused = await refusal_of(app, token)
    assert refused.status_code == 401
    assert detail in refused.detail


async def test_another_better_auth_deployment_is_refused(
    app: Litestar, better_auth_server: JwksServer, better_auth_keys: dict[str, SigningKey]
) -> None:
    elsewhere = "https://taskflow.example.net"
    token = better_auth_keys["EdDSA"].sign(better_auth_claims(elsewhere))
    refused = await refusal_of(app, token)
    assert refused.status_code == 401
    assert better_auth_server.fetches == 0


async def test_a_trailing_slash_in_better_auth_url_is_ignored(
    database_url: str,
    tmp_path: Path,
    db: asyncpg.Connection,
    clock: Clock,
    better_auth_server: JwksServer,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    settings = make_settings(database_url, tmp_path, BETTER_AUTH_URL=better_auth_server.url + "/")
    async with app_with_clock(settings, clock) as app:
        token = better_auth_keys["ES256"].sign(better_auth_claims(better_auth_server.url))
        assert (await caller_for(app, token)).provider == "better-auth"


async def test_a_moved_key_set_and_custom_claims_are_configured_with_their_variables(
    database_url: str,
    tmp_path: Path,
    db: asyncpg.Connection,
    clock: Clock,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    issuer, audience = "https://auth.taskflow.example", "taskflow-api"
    with serving(JwksServer(path="/auth/.well-known/jwks.json")) as moved:
        moved.publish(better_auth_keys["ES512"])
        settings = make_settings(
            database_url,
            tmp_path,
            BETTER_AUTH_URL=moved.url,
            BETTER_AUTH_JWKS_URL=f"{moved.url}/auth/.well-known/jwks.json",
            BETTER_AUTH_ISSUER=issuer,
            BETTER_AUTH_AUDIENCE=audience,
        )
        async with app_with_clock(settings, clock, moved) as app:
            token = better_auth_keys["ES512"].sign(better_auth_claims(issuer, aud=audience))
            assert (await caller_for(app, token)).provider == "better-auth"
            default_audience = better_auth_keys["ES512"].sign(better_auth_claims(issuer, aud=moved.url))
            assert "audience" in (await refusal_of(app, default_audience)).detail
        assert moved.fetches == 1


async def test_iss_and_aud_default_to_the_origin_of_better_auth_url(
    database_url: str,
    tmp_path: Path,
    db: asyncpg.Connection,
    clock: Clock,
    better_auth_server: JwksServer,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        BETTER_AUTH_URL=f"{better_auth_server.url}/taskflow",
        BETTER_AUTH_JWKS_URL=f"{better_auth_server.url}{BETTER_AUTH_JWKS_PATH}",
    )
    async with app_with_clock(settings, clock, better_auth_server) as app:
        token = better_auth_keys["EdDSA"].sign(better_auth_claims(better_auth_server.url))
        assert (await caller_for(app, token)).provider == "better-auth"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"BETTER_AUTH_JWKS_URL": "http://127.0.0.1:3000/api/auth/jwks"},
            "invalid BETTER_AUTH_JWKS_URL: set BETTER_AUTH_URL",
        ),
        ({"BETTER_AUTH_ISSUER": "https://auth.example"}, "invalid BETTER_AUTH_ISSUER: set BETTER_AUTH_URL"),
        ({"BETTER_AUTH_AUDIENCE": "taskflow-api"}, "invalid BETTER_AUTH_AUDIENCE: set BETTER_AUTH_URL"),
        ({"BETTER_AUTH_URL": "http://[::1"}, "invalid BETTER_AUTH_URL: not a URL"),
        ({"BETTER_AUTH_URL": "localhost:3000"}, "invalid BETTER_AUTH_URL: must be an http://"),
        (
            {
                "BETTER_AUTH_URL": "http://127.0.0.1:3000",
                "BETTER_AUTH_JWKS_URL": "127.0.0.1:3000/api/auth/jwks",
            },
            "invalid BETTER_AUTH_JWKS_URL: must start with http:// or https://",
        ),
    ],
)
def test_better_auth_settings_that_cannot_work_are_refused_at_start_up(
    database_url: str, tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        make_settings(database_url, tmp_path, **environ)
