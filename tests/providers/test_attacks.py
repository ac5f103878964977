"""Forged tokens: key confusion, alg=none, unknown kids, self-declared keys, cross-provider replay."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from litestar import Litestar

from tests.conftest import bearer, make_user
from tests.providers.conftest import (
    BETTER_AUTH_SECRET,
    SUPABASE_SECRET,
    JwksServer,
    SigningKey,
    better_auth_claims,
    caller_for,
    hs256,
    new_key,
    refusal_of,
    seed_002_claims,
    serving,
    supabase_claims,
)


def _segment(data: dict[str, Any]) -> bytes:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")


def forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A token assembled by hand, as an attacker would: pyjwt itself refuses to sign these."""
    signing_input = _segment(header) + b"." + _segment(claims)
    signature = b""
    if secret is not None:
        digest = hmac.new(secret, signing_input, hashlib.sha256).digest()
        signature = base64.urlsafe_b64encode(digest).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def public_pem(key: SigningKey) -> bytes:
    return key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def attacker_server() -> Iterator[JwksServer]:
    """A key set under the attacker's control, to see whether anything ever fetches it."""
    server = JwksServer(path="/jwks.json")
    server.publish(new_key("ES256", kid="attacker"))
    with serving(server):
        yield server


@pytest.mark.parametrize(
    "secret_of",
    [public_pem, lambda key: json.dumps(key.public_jwk).encode()],
    ids=["pem", "jwk-json"],
)
async def test_hs256_signed_with_a_published_public_key_is_401(
    app: Litestar,
    supabase_server: JwksServer,
    better_auth_server: JwksServer,
    supabase_es256: SigningKey,
    better_auth_keys: dict[str, SigningKey],
    secret_of: Any,
) -> None:
    for key, claims in [
        (supabase_es256, supabase_claims(supabase_server.url)),
        (better_auth_keys["RS256"], better_auth_claims(better_auth_server.url)),
        (better_auth_keys["EdDSA"], better_auth_claims(better_auth_server.url)),
    ]:
        for header in ({"alg": "HS256", "typ": "JWT", "kid": key.kid}, {"alg": "HS256", "typ": "JWT"}):
            refused = await refusal_of(app, forged(header, claims, secret_of(key)))
            assert refused.status_code == 401, (key.algorithm, header)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
async def test_unsigned_tokens_are_401(
    app: Litestar,
    supabase_server: JwksServer,
    better_auth_server: JwksServer,
    supabase_es256: SigningKey,
    better_auth_keys: dict[str, SigningKey],
    alg: str,
) -> None:
    cases = [
        ({"alg": alg, "kid": supabase_es256.kid}, supabase_claims(supabase_server.url)),
        ({"alg": alg, "kid": better_auth_keys["EdDSA"].kid}, better_auth_claims(better_auth_server.url)),
        ({"alg": alg}, seed_002_claims()),
    ]
    for header, claims in cases:
        assert (await refusal_of(app, forged(header, claims, None))).status_code == 401


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
async def test_tokens_that_name_their_own_key_are_401_and_nothing_is_fetched(
    app: Litestar,
    supabase_server: JwksServer,
    supabase_es256: SigningKey,
    attacker_server: JwksServer,
    header: str,
) -> None:
    attacker_key = new_key("ES256", kid="attacker")
    values: dict[str, Any] = {
        "jku": f"{attacker_server.url}/jwks.json",
        "x5u": f"{attacker_server.url}/jwks.json",
        "jwk": attacker_key.public_jwk,
        "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"],
    }
    claims = supabase_claims(supabase_server.url)
    # Even a genuine signature does not make those headers acceptable.
    genuine = supabase_es256.sign(claims, headers={header: values[header]})
    self_signed = attacker_key.sign(claims, headers={header: values[header]})
    for token in (genuine, self_signed):
        refused = await refusal_of(app, token)
        assert refused.status_code == 401
    assert attacker_server.fetches == 0


async def test_an_unknown_kid_is_401(
    app: Litestar, supabase_server: JwksServer, better_auth_server: JwksServer
) -> None:
    stranger = new_key("ES256", kid="not-published")
    assert (await refusal_of(app, stranger.sign(supabase_claims(supabase_server.url)))).status_code == 401
    stranger_ed = new_key("EdDSA", kid="not-published")
    token = stranger_ed.sign(better_auth_claims(better_auth_server.url))
    assert (await refusal_of(app, token)).status_code == 401


@pytest.mark.parametrize("kid", [123, ["a"], {"kid": "x"}])
async def test_a_kid_that_is_not_a_string_is_401(
    app: Litestar, supabase_server: JwksServer, supabase_es256: SigningKey, kid: Any
) -> None:
    claims = supabase_claims(supabase_server.url)
    token = forged({"alg": "HS256", "kid": kid}, claims, SUPABASE_SECRET.encode())
    assert (await refusal_of(app, token)).status_code == 401
    assert supabase_server.fetches == 0


async def test_a_better_auth_key_cannot_sign_for_supabase_or_the_reverse(
    app: Litestar,
    supabase_server: JwksServer,
    better_auth_server: JwksServer,
    supabase_es256: SigningKey,
    better_auth_keys: dict[str, SigningKey],
) -> None:
    # Same kid namespace tricks: reuse the other provider's kid on a key it really published.
    as_supabase = better_auth_keys["ES256"].sign(supabase_claims(supabase_server.url))
    assert (await refusal_of(app, as_supabase)).status_code == 401
    as_better_auth = supabase_es256.sign(better_auth_claims(better_auth_server.url))
    assert (await refusal_of(app, as_better_auth)).status_code == 401


async def test_a_shared_secret_only_signs_for_its_own_provider(
    app: Litestar, supabase_server: JwksServer, better_auth_server: JwksServer
) -> None:
    supabase_token_with_better_auth_secret = hs256(supabase_claims(supabase_server.url), BETTER_AUTH_SECRET)
    assert (await refusal_of(app, supabase_token_with_better_auth_secret)).status_code == 401
    issuerless_with_supabase_secret = hs256(seed_002_claims(aud="authenticated"), SUPABASE_SECRET)
    assert (await refusal_of(app, issuerless_with_supabase_secret)).status_code == 401
    better_auth_with_supabase_secret = hs256(better_auth_claims(better_auth_server.url), SUPABASE_SECRET)
    assert (await refusal_of(app, better_auth_with_supabase_secret)).status_code == 401


async def test_a_provider_key_cannot_mint_our_own_tokens(
    app: Litestar, db: asyncpg.Connection, supabase_es256: SigningKey
) -> None:
    user_id = await make_user(db, role="admin")
    claims = {"iss": "service", "aud": "service-api", "sub": str(user_id), "typ": "access"}
    claims |= {"iat": int(time.time()), "exp": int(time.time()) + 900, "jti": str(uuid.uuid4())}
    assert (await refusal_of(app, supabase_es256.sign(claims))).status_code == 401
    assert (await refusal_of(app, hs256(claims, SUPABASE_SECRET))).status_code == 401


async def test_our_own_tokens_still_work_with_providers_configured(
    app: Litestar, db: asyncpg.Connection
) -> None:
    user_id = await make_user(db, email="local@example.com")
    token = bearer(app.state.settings, user_id)["Authorization"].removeprefix("Bearer ")
    caller = await caller_for(app, token)
    assert (caller.id, caller.provider, caller.subject) == (user_id, "local", str(user_id))
    assert await db.fetchval("SELECT count(*) FROM identities") == 0
