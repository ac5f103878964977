"""Provider key sets: cached, refetched on rotation without letting bogus kids hammer the provider,
served stale while the provider is down, and a 503 (never a 500) when no key is known at all."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar

from service.app import create_app
from service.http.errors import ServiceUnavailable
from service.security.jwks import (
    FAILED_FETCH_RETRY_SECONDS,
    MIN_FETCH_INTERVAL_SECONDS,
    MIN_TTL_SECONDS,
    STALE_GRACE_SECONDS,
    UNKNOWN_KID_SECONDS,
)
from service.security.providers import KEY_CHECK_STATE_KEY
from service.settings import Settings
from tests.conftest import make_settings, running
from tests.processes import closed_port_url
from tests.providers.conftest import (
    SUPABASE_SECRET,
    Clock,
    JwksServer,
    SigningKey,
    WarningsOf,
    app_with_clock,
    better_auth_claims,
    caller_for,
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


async def test_a_key_minted_just_after_a_fetch_works_on_its_first_request(
    app: Litestar, clock: Clock, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    await caller_for(app, supabase_es256.sign(supabase_claims(supabase_server.url)))
    minted = new_key("ES256", kid="minted-a-moment-ago")
    supabase_server.publish(minted, supabase_es256)
    clock.advance(MIN_FETCH_INTERVAL_SECONDS / 4)

    caller = await caller_for(app, minted.sign(supabase_claims(supabase_server.url)))

    assert caller.provider == "supabase"
    assert supabase_server.fetches == 2
    assert clock.now >= 1000 + MIN_FETCH_INTERVAL_SECONDS, "it waited for the fetch interval, not 30 s"


async def test_a_made_up_kid_is_refused_without_refetching_for_a_while(
    app: Litestar, clock: Clock, supabase_server: JwksServer, supabase_es256: SigningKey
) -> None:
    made_up = new_key("ES256", kid="made-up")
    for _ in range(5):
        assert (await refusal_of(app, made_up.sign(supabase_claims(supabase_server.url)))).status_code == 401
    assert supabase_server.fetches == 1

    clock.advance(UNKNOWN_KID_SECONDS)
    await refusal_of(app, made_up.sign(supabase_claims(supabase_server.url)))
    assert supabase_server.fetches == 2


async def test_a_burst_of_made_up_kids_fetches_at_most_once_a_second(
    settings: Settings,
    db: asyncpg.Connection,
    better_auth_server: JwksServer,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    async with running(create_app(settings)) as app:
        await app.state[KEY_CHECK_STATE_KEY]
        better_auth_server.forget_requests()
        started = time.monotonic()
        # A new made-up kid every 20 ms for 2.5 s, each request in flight while the next arrives.
        in_flight = []
        for n in range(125):
            token = new_key("EdDSA", kid=f"made-up-{n}").sign(better_auth_claims(better_auth_server.url))
            in_flight.append(asyncio.create_task(refusal_of(app, token)))
            await asyncio.sleep(0.02)
        refusals = await asyncio.gather(*in_flight)
        assert {refusal.status_code for refusal in refusals} == {401}
        elapsed = time.monotonic() - started
        genuine = better_auth_keys["EdDSA"].sign(better_auth_claims(better_auth_server.url))
        assert (await caller_for(app, genuine)).provider == "better-auth"

    print(f"{better_auth_server.fetches} fetches for 125 made-up kids in {elapsed:.2f} s")
    assert 1 <= better_auth_server.fetches <= elapsed / MIN_FETCH_INTERVAL_SECONDS + 1


async def test_each_configured_key_set_is_fetched_once_at_start_up(
    settings: Settings,
    db: asyncpg.Connection,
    supabase_server: JwksServer,
    better_auth_server: JwksServer,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    with WarningsOf("service.security.providers") as warnings:
        async with running(create_app(settings)) as app:
            await app.state[KEY_CHECK_STATE_KEY]
            assert (supabase_server.fetches, better_auth_server.fetches) == (1, 1)
            await caller_for(app, better_auth_keys["PS256"].sign(better_auth_claims(better_auth_server.url)))
            assert better_auth_server.fetches == 1, "the first token found the keys already cached"
    assert warnings.messages == []


@pytest.mark.parametrize(
    ("environ", "warning"),
    [
        (
            {"BETTER_AUTH_JWKS_URL": "{better_auth}/api/auth/jwks.json"},
            "BETTER_AUTH_JWKS_URL: the better-auth signing keys at {better_auth}/api/auth/jwks.json "
            "cannot be used (status 404): a configuration error",
        ),
        (
            {"SUPABASE_URL": "{supabase}/rest/v1"},
            "SUPABASE_URL: the supabase signing keys at {supabase}/rest/v1/auth/v1/.well-known/jwks.json "
            "cannot be used (status 404): a configuration error; SUPABASE_URL must be the project URL",
        ),
        (
            {"BETTER_AUTH_URL": "{down}", "BETTER_AUTH_JWKS_URL": ""},
            "BETTER_AUTH_URL: the better-auth signing keys at {down}/api/auth/jwks "
            "cannot be fetched (ConnectError",
        ),
    ],
    ids=["better-auth-404", "supabase-404", "unreachable"],
)
async def test_an_unusable_key_set_is_a_warning_at_start_up_naming_the_variable_and_url(
    database_url: str,
    tmp_path: Path,
    db: asyncpg.Connection,
    supabase_server: JwksServer,
    better_auth_server: JwksServer,
    environ: dict[str, str],
    warning: str,
) -> None:
    urls = {"supabase": supabase_server.url, "better_auth": better_auth_server.url, "down": closed_port_url()}
    configured = {
        "SUPABASE_URL": supabase_server.url,
        "BETTER_AUTH_URL": better_auth_server.url,
        **{name: value.format(**urls) for name, value in environ.items()},
    }
    with WarningsOf("service.security.providers") as warnings:
        async with running(create_app(make_settings(database_url, tmp_path, **configured))) as app:
            await app.state[KEY_CHECK_STATE_KEY]
            assert len(warnings.messages) == 1, warnings.messages
    assert warnings.messages[0].startswith(warning.format(**urls))


@pytest.mark.parametrize("document", [b"<html>maintenance</html>", b"{}"], ids=["html", "no-keys"])
async def test_a_url_that_answers_something_else_than_a_jwks_is_a_start_up_warning(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, better_auth_server: JwksServer, document: bytes
) -> None:
    better_auth_server.raw_body = document
    settings = make_settings(database_url, tmp_path, BETTER_AUTH_URL=better_auth_server.url)
    with WarningsOf("service.security.providers") as warnings:
        async with running(create_app(settings)) as app:
            await app.state[KEY_CHECK_STATE_KEY]
    [warning] = warnings.messages
    assert warning.startswith(
        f"BETTER_AUTH_URL: the better-auth signing keys at {better_auth_server.url}/api/auth/jwks"
    )
    assert "not a JWKS document" in warning


async def test_an_empty_key_set_beside_a_shared_secret_is_no_warning(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, supabase_server: JwksServer
) -> None:
    supabase_server.keys = []
    with_secret = make_settings(
        database_url, tmp_path, SUPABASE_URL=supabase_server.url, SUPABASE_JWT_SECRET=SUPABASE_SECRET
    )
    without_secret = make_settings(database_url, tmp_path, SUPABASE_URL=supabase_server.url)
    messages = []
    for settings in (with_secret, without_secret):
        with WarningsOf("service.security.providers") as warnings:
            async with running(create_app(settings)) as app:
                await app.state[KEY_CHECK_STATE_KEY]
        messages.append(warnings.messages)
    assert messages[0] == [], "a project still on its legacy secret publishes an empty set"
    assert len(messages[1]) == 1
    assert "no usable signing key" in messages[1][0]
