"""Provider key sets: cached, refetched on rotation without letting bogus kids hammer the provider,
served stale while the provider is down, and a 503 (never a 500) when no key is known at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar

from service.app import create_app
from service.errors import ServiceUnavailable
from service.security.jwks import FAILED_FETCH_RETRY_SECONDS, MIN_TTL_SECONDS, STALE_GRACE_SECONDS
from service.settings import Settings
from tests.conftest import make_settings, running
from tests.providers.conftest import (
    SUPABASE_SECRET,
    Clock,
    JwksServer,
    SigningKey,
    app_with_clock,
    better_auth_claims,
    caller_for,
    closed_port_url,
    hs256,
    new_key,
    refusal_of,
    supabase_claims,
)


async def test_keys_are_fetched_once_not_per_request(
    app: Litestar,
    supabase_server: JwksServer,
    better_auth_server: JwksServer,
    supabase_es256: SigningKey,
    supabase_rs256: SigningKey,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    for _ in range(5):
        await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
        await caller_for(app, supabase_rs256.sign(supabase_claims(supabase_server.url)))
        await caller_for(app, better_auth_keys["EdDSA"].sign(better_auth_claims(better_auth_server.url)))
    assert supabase_server.fetches == 1
    assert better_auth_server.fetches == 1


async def test_concurrent_first_requests_share_one_fetch(
    app: Litestar, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    tokens = [supabase_es256.sign(supabase_claims(supabase_server.url)) for _ in range(8)]
    callers = await asyncio.gather(*(caller_for(app, token) for token in tokens))
    assert len({caller.id for caller in callers}) == 8
    assert supabase_server.fetches == 1


@pytest.mark.parametrize(
    ("cache_control", "lifetime"),
    [
        (None, MIN_TTL_SECONDS),
        ("public, max-age=3600", 3600),
        ("max-age=10", MIN_TTL_SECONDS),
        ("no-store", MIN_TTL_SECONDS),
    ],
)
async def test_keys_stay_cached_for_max_age_but_at_least_five_minutes(
    app: Litestar,
    clock: Clock,
    supabase_server: JwksServer,
    supabase_es256: SigningKey,
    cache_control: str | None,
    lifetime: int,
) -> None:
    supabase_server.cache_control = cache_control
    await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    clock.advance(lifetime - 1)
    await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    assert supabase_server.fetches == 1
    clock.advance(2)
    await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    assert supabase_server.fetches == 2


async def test_a_rotated_in_key_is_fetched_once_then_cached(
    app: Litestar,
    clock: Clock,
    better_auth_server: JwksServer,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    await caller_for(app, better_auth_keys["EdDSA"].sign(better_auth_claims(better_auth_server.url)))
    rotated = new_key("EdDSA", kid="rotated-in")
    better_auth_server.publish(rotated, *better_auth_keys.values())
    clock.advance(FAILED_FETCH_RETRY_SECONDS)

    for _ in range(3):
        caller = await caller_for(app, rotated.sign(better_auth_claims(better_auth_server.url)))
        assert caller.provider == "better-auth"
    assert better_auth_server.fetches == 2


async def test_a_retired_key_stops_working_once_the_cache_refreshes(
    app: Litestar,
    clock: Clock,
    supabase_server: JwksServer,
    supabase_es256: SigningKey,
    supabase_rs256: SigningKey,
) -> None:
    await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    supabase_server.publish(supabase_rs256)
    clock.advance(MIN_TTL_SECONDS)
    refused = await refusal_of(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    assert refused.status_code == 401


async def test_a_flood_of_unknown_kids_refetches_at_most_once_per_interval(
    app: Litestar, clock: Clock, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    clock.advance(FAILED_FETCH_RETRY_SECONDS)
    bogus = [new_key("ES256", kid=f"bogus-{n}") for n in range(3)]
    for _ in range(10):
        for key in bogus:
            assert (await refusal_of(app, key.sign(supabase_claims(supabase_server.url)))).status_code == 401
    assert supabase_server.fetches == 2

    tokens = [key.sign(supabase_claims(supabase_server.url)) for key in bogus] * 5
    clock.advance(FAILED_FETCH_RETRY_SECONDS)
    await asyncio.gather(*(refusal_of(app, token) for token in tokens))
    assert supabase_server.fetches == 3


async def test_provider_down_with_nothing_cached_is_503_with_retry_after(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, clock: Clock, supabase_es256: SigningKey
) -> None:
    down = closed_port_url()
    settings = make_settings(database_url, tmp_path, SUPABASE_URL=down, BETTER_AUTH_URL=down)
    async with app_with_clock(settings, clock) as app:
        refused = await refusal_of(app, supabase_es256.sign(supabase_claims(down)))
        assert isinstance(refused, ServiceUnavailable)
        assert refused.status_code == 503
        assert refused.headers == {"Retry-After": str(FAILED_FETCH_RETRY_SECONDS)}
        clock.advance(10)
        again = await refusal_of(app, supabase_es256.sign(supabase_claims(down)))
        assert again.headers == {"Retry-After": str(FAILED_FETCH_RETRY_SECONDS - 10)}
        better_auth = await refusal_of(app, new_key("EdDSA").sign(better_auth_claims(down)))
        assert better_auth.status_code == 503


async def test_provider_answering_errors_is_503_then_recovers(
    app: Litestar, clock: Clock, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    supabase_server.failing = True
    refused = await refusal_of(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    assert refused.status_code == 503
    assert supabase_server.fetches == 1
    await refusal_of(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    assert supabase_server.fetches == 1, "an outage is not retried on every request"

    supabase_server.failing = False
    clock.advance(FAILED_FETCH_RETRY_SECONDS)
    caller = await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    assert caller.provider == "supabase"


@pytest.mark.parametrize(
    "document",
    [b"<html>maintenance</html>", b'{"keys": "none"}', b"{}", b"x" * 300_000],
    ids=["html", "keys-not-a-list", "no-keys", "huge"],
)
async def test_a_garbled_key_set_is_treated_as_an_outage(
    app: Litestar,
    supabase_server: JwksServer,
    supabase_es256: SigningKey,
    document: bytes,
) -> None:
    supabase_server.raw_body = document
    refused = await refusal_of(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    assert refused.status_code == 503


async def test_stale_keys_keep_working_for_a_grace_period_while_the_provider_is_down(
    app: Litestar, clock: Clock, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    supabase_server.failing = True

    clock.advance(MIN_TTL_SECONDS + STALE_GRACE_SECONDS - 1)
    caller = await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    assert caller.provider == "supabase"
    assert supabase_server.fetches == 2

    clock.advance(2)
    refused = await refusal_of(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    assert refused.status_code == 503


async def test_legacy_secret_tokens_still_work_while_the_key_set_is_down(
    app: Litestar, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    supabase_server.failing = True
    legacy = hs256(supabase_claims(supabase_server.url), SUPABASE_SECRET, headers={"kid": "legacy"})
    assert (await caller_for(app, legacy)).provider == "supabase"
    forged = hs256(supabase_claims(supabase_server.url), "wrong-" + "w" * 40, headers={"kid": "legacy"})
    assert (await refusal_of(app, forged)).status_code == 503, "cannot tell a forgery from a rotated key"


async def test_each_app_creates_and_keeps_its_own_cache(
    settings: Settings, db: asyncpg.Connection, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    for expected_fetches in (1, 2):
        async with running(create_app(settings)) as app:
            for _ in range(3):
                await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
        assert supabase_server.fetches == expected_fetches
