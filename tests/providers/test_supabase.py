"""Supabase Auth access tokens (seed 000): JWKS (ES256, RS256) and the legacy HS256 secret."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar

from tests.conftest import make_settings
from tests.providers.conftest import (
    SUPABASE_SECRET,
    Clock,
    JwksServer,
    SigningKey,
    app_with_clock,
    caller_for,
    hs256,
    new_key,
    refusal_of,
    supabase_claims,
)


@pytest.mark.parametrize("key_name", ["supabase_es256", "supabase_rs256"])
async def test_a_supabase_user_token_signs_in_a_new_supabase_user(
    app: Litestar,
    db: asyncpg.Connection,
    supabase_server: JwksServer,
    key_name: str,
    request: pytest.FixtureRequest,
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    claims = supabase_claims(supabase_server.url)

    caller = await caller_for(app, key.sign(claims))

    assert caller.provider == "supabase"
    assert caller.subject == claims["sub"]
    assert caller.email == claims["email"]
    assert caller.role == "user"
    user = await db.fetchrow("SELECT provider, email, password_hash FROM users WHERE id = $1", caller.id)
    assert dict(user) == {"provider": "supabase", "email": claims["email"], "password_hash": None}
    identity = await db.fetchrow("SELECT provider, subject, user_id FROM identities")
    assert dict(identity) == {"provider": "supabase", "subject": claims["sub"], "user_id": caller.id}


async def test_the_same_supabase_user_keeps_one_account(
    app: Litestar, db: asyncpg.Connection, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    claims = supabase_claims(supabase_server.url)
    first = await caller_for(app, supabase_es256.sign(claims))
    later = await caller_for(app, supabase_es256.sign({**claims, "iat": int(time.time()) + 1}))
    assert later.id == first.id
    assert await db.fetchval("SELECT count(*) FROM users") == 1


@pytest.mark.parametrize("with_kid", [False, True], ids=["no-kid", "kid-not-in-jwks"])
async def test_legacy_hs256_tokens_verify_with_the_project_jwt_secret(
    app: Litestar, supabase_server: JwksServer, with_kid: bool
) -> None:
    claims = supabase_claims(supabase_server.url)
    headers = {"kid": "legacy-secret"} if with_kid else None
    caller = await caller_for(app, hs256(claims, SUPABASE_SECRET, headers))
    assert caller.provider == "supabase"
    assert caller.subject == claims["sub"]


async def test_legacy_secret_alone_accepts_tokens_without_a_project_url(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, clock: Clock
) -> None:
    settings = make_settings(database_url, tmp_path, SUPABASE_JWT_SECRET=SUPABASE_SECRET)
    claims = supabase_claims("https://abcdefgh.supabase.co")
    async with app_with_clock(settings, clock) as app:
        caller = await caller_for(app, hs256(claims, SUPABASE_SECRET))
        assert caller.provider == "supabase"
        wrong_audience = await refusal_of(app, hs256({**claims, "aud": "anon"}, SUPABASE_SECRET))
        assert wrong_audience.status_code == 401


@pytest.mark.parametrize("role", ["service_role", "supabase_admin", "admin"])
async def test_the_role_claim_never_makes_an_admin(
    app: Litestar, supabase_server: JwksServer, supabase_es256: SigningKey, role: str
) -> None:
    claims = supabase_claims(supabase_server.url, role=role)
    if role == "service_role":
        assert (await refusal_of(app, supabase_es256.sign(claims))).status_code == 401
        return
    caller = await caller_for(app, supabase_es256.sign(claims))
    assert caller.role == "user"
    assert not caller.is_admin


@pytest.mark.parametrize("role", ["anon", "service_role"])
async def test_project_api_keys_are_not_user_tokens(
    app: Litestar, supabase_server: JwksServer, supabase_es256: SigningKey, role: str
) -> None:
    now = int(time.time())
    # Exactly what the dashboard shows as the anon / service_role key (signed with the JWT secret).
    api_key = {"iss": "supabase", "ref": "abcdefghijklmnop", "role": role, "iat": now, "exp": now + 3600}
    assert (await refusal_of(app, hs256(api_key, SUPABASE_SECRET))).status_code == 401
    # Even under the project's issuer and signed with a published key, a key is not a user.
    issued_here = {**api_key, "iss": f"{supabase_server.url}/auth/v1"}
    assert (await refusal_of(app, supabase_es256.sign(issued_here))).status_code == 401
    assert (await refusal_of(app, hs256(issued_here, SUPABASE_SECRET))).status_code == 401
    with_everything_else = supabase_claims(supabase_server.url, role=role)
    refused = await refusal_of(app, hs256(with_everything_else, SUPABASE_SECRET))
    assert refused.status_code == 401
    assert "API key" in refused.detail


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"aud": "anon"}, "audience"),
        ({"aud": ["service", "dashboard"]}, "audience"),
        ({"aud": None}, "aud"),
        ({"sub": None}, "sub"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iat": int(time.time()) + 3600}, "invalid token"),
        ({"sub": ""}, "sub"),
        ({"sub": 12345}, "invalid token"),
        ({"sub": "x" * 300}, "subject"),
        ({"sub": "nul\x00byte"}, "subject"),
    ],
)
async def test_a_token_with_a_bad_or_missing_claim_is_401(
    app: Litestar,
    db: asyncpg.Connection,
    supabase_server: JwksServer,
    supabase_es256: SigningKey,
    change: dict[str, object],
    detail: str,
) -> None:
    token = supabase_es256.sign(supabase_claims(supabase_server.url, **change))
    refused = await refusal_of(app, token)
    assert refused.status_code == 401
    assert detail in refused.detail
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_another_projects_issuer_is_refused(
    app: Litestar, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    other_project = supabase_claims("https://someone-else.supabase.co")
    refused = await refusal_of(app, supabase_es256.sign(other_project))
    assert refused.status_code == 401
    assert "issuer" in refused.detail
    assert supabase_server.fetches == 0, "a foreign issuer never makes us fetch anything"


async def test_a_token_signed_with_a_key_the_project_does_not_publish_is_401(
    app: Litestar, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    impostor = new_key("ES256", kid=supabase_es256.kid)
    refused = await refusal_of(app, impostor.sign(supabase_claims(supabase_server.url)))
    assert refused.status_code == 401


async def test_a_wrong_legacy_secret_is_401(app: Litestar, supabase_server: JwksServer) -> None:
    token = hs256(supabase_claims(supabase_server.url), "not-the-project-secret-" + "n" * 20)
    assert (await refusal_of(app, token)).status_code == 401


async def test_a_supabase_provider_jti_that_is_a_uuid_is_kept(
    app: Litestar, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    jti = uuid.uuid4()
    caller = await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url, jti=str(jti))))
    assert caller.token_jti == jti
