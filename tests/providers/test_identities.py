"""External identities: provisioned just in time, race-safe, never merged by email."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import pytest
from litestar import Litestar

from tests.conftest import make_user
from tests.providers.conftest import (
    BETTER_AUTH_SECRET,
    JwksServer,
    SigningKey,
    better_auth_claims,
    caller_for,
    hs256,
    refusal_of,
    seed_002_claims,
    supabase_claims,
)


async def test_concurrent_first_requests_provision_exactly_one_user(
    app: Litestar, db: asyncpg.Connection, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    token = supabase_es256.sign(supabase_claims(supabase_server.url))
    callers = await asyncio.gather(*(caller_for(app, token) for _ in range(10)))
    assert len({caller.id for caller in callers}) == 1
    assert await db.fetchval("SELECT count(*) FROM users") == 1
    assert await db.fetchval("SELECT count(*) FROM identities") == 1


async def test_provisioning_is_audited_once(
    app: Litestar, db: asyncpg.Connection, better_auth_server: JwksServer
) -> None:
    claims = seed_002_claims()
    token = hs256(claims, BETTER_AUTH_SECRET)
    caller = await caller_for(app, token)
    await caller_for(app, token)
    events = await db.fetch("SELECT action, actor_id, target_id, details FROM audit_events")
    assert [(e["action"], e["actor_id"], e["target_id"]) for e in events] == [
        ("auth.register", caller.id, str(caller.id))
    ]
    assert json.loads(events[0]["details"]) == {"provider": "better-auth", "subject": claims["sub"]}


async def test_the_same_email_at_two_providers_and_locally_is_three_accounts(
    app: Litestar,
    db: asyncpg.Connection,
    supabase_server: JwksServer,
    better_auth_server: JwksServer,
    supabase_es256: SigningKey,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    email = "shared@example.com"
    local_id = await make_user(db, email=email)
    supabase = await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url, email=email)))
    better_auth = await caller_for(
        app, better_auth_keys["EdDSA"].sign(better_auth_claims(better_auth_server.url, email=email))
    )
    assert len({local_id, supabase.id, better_auth.id}) == 3
    rows = await db.fetch("SELECT provider FROM users WHERE email = $1 ORDER BY provider", email)
    assert [row["provider"] for row in rows] == ["better-auth", "local", "supabase"]


async def test_the_same_subject_at_two_providers_is_two_accounts(
    app: Litestar, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    claims = supabase_claims(supabase_server.url)
    supabase = await caller_for(app, supabase_es256.sign(claims))
    better_auth = await caller_for(app, hs256(seed_002_claims(sub=claims["sub"]), BETTER_AUTH_SECRET))
    assert supabase.id != better_auth.id
    assert supabase.subject == better_auth.subject == claims["sub"]


async def test_the_callers_subject_is_the_token_sub_for_every_provider(
    app: Litestar,
    supabase_server: JwksServer,
    better_auth_server: JwksServer,
    supabase_es256: SigningKey,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    # Seed 002's rule: /api/{user_id}/tasks compares user_id with the token's sub.
    for claims, token in [
        (c := supabase_claims(supabase_server.url), supabase_es256.sign(c)),
        (c := better_auth_claims(better_auth_server.url), better_auth_keys["EdDSA"].sign(c)),
        (c := seed_002_claims(), hs256(c, BETTER_AUTH_SECRET)),
    ]:
        caller = await caller_for(app, token)
        assert caller.subject == claims["sub"]
        assert str(caller.id) != caller.subject


async def test_a_deactivated_external_user_is_refused(
    app: Litestar, db: asyncpg.Connection, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    claims = supabase_claims(supabase_server.url)
    caller = await caller_for(app, supabase_es256.sign(claims))
    await db.execute("UPDATE users SET is_active = false WHERE id = $1", caller.id)
    refused = await refusal_of(app, supabase_es256.sign(claims))
    assert refused.status_code == 401
    assert await db.fetchval("SELECT count(*) FROM users") == 1


async def test_deleting_the_user_removes_the_identity(
    app: Litestar, db: asyncpg.Connection, better_auth_server: JwksServer
) -> None:
    caller = await caller_for(app, hs256(seed_002_claims(), BETTER_AUTH_SECRET))
    await db.execute("DELETE FROM users WHERE id = $1", caller.id)
    assert await db.fetchval("SELECT count(*) FROM identities") == 0


async def test_an_unusable_email_claim_is_left_out(
    app: Litestar, db: asyncpg.Connection, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    for email in ["", "not-an-email", 42, "x" * 400 + "@example.com", "nul\x00@example.com"]:
        caller = await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url, email=email)))
        assert caller.email is None


@pytest.mark.parametrize(
    ("user_metadata", "full_name"),
    [
        ({"full_name": "Ada Lovelace", "name": "ada"}, "Ada Lovelace"),
        ({"name": "  Ada King  "}, "Ada King"),
        ({"full_name": "", "name": "Ada"}, "Ada"),
        ({"full_name": 42}, None),
        ({}, None),
        ({"full_name": "A" * 300}, "A" * 200),
    ],
)
async def test_a_supabase_user_gets_the_full_name_from_user_metadata(
    app: Litestar,
    db: asyncpg.Connection,
    supabase_server: JwksServer,
    supabase_es256: SigningKey,
    user_metadata: dict[str, object],
    full_name: str | None,
) -> None:
    claims = supabase_claims(supabase_server.url, user_metadata=user_metadata)
    caller = await caller_for(app, supabase_es256.sign(claims))
    assert await db.fetchval("SELECT full_name FROM users WHERE id = $1", caller.id) == full_name


async def test_a_better_auth_user_gets_the_full_name_from_the_name_claim(
    app: Litestar,
    db: asyncpg.Connection,
    better_auth_server: JwksServer,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    named = better_auth_claims(better_auth_server.url, name="Grace Hopper")
    unnamed = better_auth_claims(better_auth_server.url, name=None)
    for claims, full_name in ((named, "Grace Hopper"), (unnamed, None)):
        caller = await caller_for(app, better_auth_keys["EdDSA"].sign(claims))
        assert await db.fetchval("SELECT full_name FROM users WHERE id = $1", caller.id) == full_name


async def test_the_full_name_is_taken_once_not_copied_on_later_tokens(
    app: Litestar,
    db: asyncpg.Connection,
    better_auth_server: JwksServer,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    claims = better_auth_claims(better_auth_server.url, name="Grace Hopper")
    caller = await caller_for(app, better_auth_keys["EdDSA"].sign(claims))
    renamed = {**claims, "name": "Grace Brewster Murray Hopper", "iat": claims["iat"] + 1}
    await caller_for(app, better_auth_keys["EdDSA"].sign(renamed))
    assert await db.fetchval("SELECT full_name FROM users WHERE id = $1", caller.id) == "Grace Hopper"


async def test_logout_ends_a_provider_token_without_a_jti(client: httpx.AsyncClient) -> None:
    claims = seed_002_claims()
    token = hs256(claims, BETTER_AUTH_SECRET)  # seed 002's tokens carry no jti at all
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204
    after = await asyncio.gather(*(client.get("/api/auth/me", headers=headers) for _ in range(10)))
    assert {answer.status_code for answer in after} == {401}
    assert {answer.json()["detail"] for answer in after} == {"token has been revoked"}
    # Only that token: the user's next one (another iat, so another token) still works.
    fresh = hs256({**claims, "iat": claims["iat"] + 1}, BETTER_AUTH_SECRET)
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {fresh}"})).status_code == 200
