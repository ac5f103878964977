"""Our API with tokens from a real Better Auth server, configured as its docs let people configure it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest

from service.app import create_app
from service.security.providers import KEY_CHECK_STATE_KEY
from tests.better_auth.conftest import BetterAuthServer, key_id
from tests.conftest import make_settings, running
from tests.providers.conftest import WarningsOf

# Every `jwks.keyPairConfig.alg` the jwt plugin offers; EdDSA is its default.
PLUGIN_ALGORITHMS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"]
DEADLINE_SECONDS = 30


@asynccontextmanager
async def our_api(database_url: str, workdir: Path, **environ: str) -> AsyncIterator[httpx.AsyncClient]:
    """Our service, in process, configured with these variables; its start-up key check done."""
    async with running(create_app(make_settings(database_url, workdir, **environ))) as app:
        await app.state[KEY_CHECK_STATE_KEY]
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def me(api: httpx.AsyncClient, token: str) -> httpx.Response:
    return await api.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("algorithm", PLUGIN_ALGORITHMS)
async def test_a_better_auth_user_signs_in_with_each_key_algorithm(
    better_auth: dict[str, BetterAuthServer],
    database_url: str,
    tmp_path: Path,
    db: asyncpg.Connection,
    algorithm: str,
) -> None:
    server = better_auth[algorithm]
    async with (
        server.user("Grace Hopper") as user,
        our_api(database_url, tmp_path, BETTER_AUTH_URL=server.url) as api,
    ):
        token = await user.jwt()
        assert jwt.get_unverified_header(token)["alg"] == algorithm

        answer = await me(api, token)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["provider"], body["email"], body["full_name"]) == ("better-auth", user.email, "Grace Hopper")
    assert await db.fetchval("SELECT subject FROM identities WHERE user_id = $1", body["id"]) == user.id


async def test_a_custom_base_path_and_jwks_path_are_found_through_better_auth_jwks_url(
    better_auth: dict[str, BetterAuthServer], database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    server = better_auth["custom-paths"]
    async with server.user() as user:
        token = await user.jwt()
    async with our_api(database_url, tmp_path, BETTER_AUTH_URL=server.url) as api:
        unconfigured = await me(api, token)
    jwks_url = f"{server.url}/auth/.well-known/jwks.json"
    async with our_api(
        database_url, tmp_path, BETTER_AUTH_URL=server.url, BETTER_AUTH_JWKS_URL=jwks_url
    ) as api:
        configured = await me(api, token)

    assert unconfigured.status_code == 503, "the default /api/auth/jwks answers 404 there"
    assert unconfigured.headers["content-type"].startswith("application/problem+json")
    assert configured.status_code == 200, configured.text


async def test_a_custom_audience_and_issuer_are_set_with_their_variables(
    better_auth: dict[str, BetterAuthServer], database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    server = better_auth["custom-claims"]
    issuer, audience = "https://auth.taskflow.example", "taskflow-api"
    async with server.user() as user:
        token = await user.jwt()
    answers = {}
    for name, extra in {
        "defaults": {},
        "issuer only": {"BETTER_AUTH_ISSUER": issuer},
        "both": {"BETTER_AUTH_ISSUER": issuer, "BETTER_AUTH_AUDIENCE": audience},
    }.items():
        async with our_api(database_url, tmp_path, BETTER_AUTH_URL=server.url, **extra) as api:
            answers[name] = await me(api, token)

    assert (answers["defaults"].status_code, answers["defaults"].json()["detail"]) == (
        401,
        "token issuer is not accepted",
    )
    assert (answers["issuer only"].status_code, answers["issuer only"].json()["detail"]) == (
        401,
        "token audience is not accepted",
    )
    assert answers["both"].status_code == 200, answers["both"].text


async def test_a_key_rotated_in_a_moment_ago_works_on_its_first_request(
    better_auth: dict[str, BetterAuthServer], database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    server = better_auth["rotating"]
    async with server.user() as user, our_api(database_url, tmp_path, BETTER_AUTH_URL=server.url) as api:
        before = await user.jwt()
        assert (await me(api, before)).status_code == 200
        # Better Auth mints the next key once the current one is a second old, and signs with it at once.
        deadline = time.monotonic() + DEADLINE_SECONDS
        rotated = before
        while key_id(rotated) == key_id(before):
            assert time.monotonic() < deadline, "Better Auth did not rotate its key"
            await asyncio.sleep(0.1)
            rotated = await user.jwt()

        first_request = await me(api, rotated)
        still_published = await me(api, before)

    assert first_request.status_code == 200, first_request.text
    assert still_published.status_code == 200, "the previous key stays in the JWKS for its grace period"


async def test_a_jwks_url_answering_404_is_reported_at_start_up_naming_the_variable(
    better_auth: dict[str, BetterAuthServer], database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    server = better_auth["custom-paths"]
    warnings = WarningsOf("service.security.providers")
    with warnings:
        async with our_api(database_url, tmp_path, BETTER_AUTH_URL=server.url) as api:
            assert (await api.get("/health")).status_code == 200, "a warning, not a failed start"

    [warning] = warnings.messages
    assert warning.startswith("BETTER_AUTH_URL: ")
    assert f"{server.url}/api/auth/jwks" in warning
    assert "status 404" in warning
    assert "BETTER_AUTH_JWKS_URL" in warning, "the warning says which variable fixes it"
