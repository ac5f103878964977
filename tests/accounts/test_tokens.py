"""Access tokens: only a genuine, current access token of an active user gets through."""

import base64
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from litestar import Request
from litestar.exceptions import NotAuthorizedException

from service.security.auth import authenticated_caller
from service.security.tokens import AUDIENCE, ISSUER, VerifiedToken, VerifiedTokenCache
from service.settings import Settings
from tests.accounts.conftest import OTHER_STRONG_PASSWORD, STRONG_PASSWORD, auth, login
from tests.conftest import TEST_JWT_SECRET, bearer, make_user


def _claims(user_id: uuid.UUID, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "typ": "access",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _forged_tokens(user_id: uuid.UUID) -> dict[str, str]:
    good = jwt.encode(_claims(user_id), TEST_JWT_SECRET, algorithm="HS256")
    header, payload, signature = good.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    escalated = _b64({**_claims(user_id), "sub": str(uuid.uuid4())})
    return {
        "tampered signature": f"{header}.{payload}.{flipped}",
        "tampered payload": f"{header}.{escalated}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "other secret": jwt.encode(_claims(user_id), "another-secret-" + "y" * 40, algorithm="HS256"),
        "expired": jwt.encode(
            _claims(
                user_id, iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200, exp=int(time.time()) - 3600
            ),
            TEST_JWT_SECRET,
            algorithm="HS256",
        ),
        "wrong typ": jwt.encode(_claims(user_id, typ="refresh"), TEST_JWT_SECRET, algorithm="HS256"),
        "no typ": jwt.encode(_claims(user_id, typ=None), TEST_JWT_SECRET, algorithm="HS256"),
        "no exp": jwt.encode(_claims(user_id, exp=None), TEST_JWT_SECRET, algorithm="HS256"),
        "wrong audience": jwt.encode(
            _claims(user_id, aud="someone-else"), TEST_JWT_SECRET, algorithm="HS256"
        ),
        "HS384 with our secret": jwt.encode(_claims(user_id), TEST_JWT_SECRET, algorithm="HS384"),
        "not a jwt": "definitely-not-a-jwt",
    }


async def test_bad_access_tokens_are_401_with_www_authenticate(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user_id = await make_user(db)
    for kind, token in _forged_tokens(user_id).items():
        response = await client.get("/api/auth/me", headers=auth(token))
        assert response.status_code == 401, kind
        assert response.headers["www-authenticate"] == "Bearer", kind
        assert response.headers["content-type"] == "application/problem+json", kind


async def test_a_genuine_token_passes(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
) -> None:
    user_id = await make_user(db)
    response = await client.get("/api/auth/me", headers=bearer(settings, user_id))
    assert response.status_code == 200


async def test_a_refresh_token_is_never_an_access_token(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    response = await client.get("/api/auth/me", headers=auth(tokens["refresh_token"]))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert tokens["refresh_token"].count(".") == 0, "a refresh token is opaque, not a JWT"


async def test_missing_or_malformed_authorization_is_401(client: httpx.AsyncClient) -> None:
    for header in (None, "Bearer", "Bearer ", "Basic YWRhOnB3", "bearer" + " x" * 5000, "Token abc"):
        headers = {"Authorization": header} if header is not None else {}
        response = await client.get("/api/auth/me", headers=headers)
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"] == "Bearer", header


async def test_a_deactivated_or_deleted_users_tokens_stop_at_once(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    headers = auth(tokens["access_token"])
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    await db.execute("UPDATE users SET is_active = false")
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    assert refreshed.json()["detail"] == "account is not active"
    await db.execute("UPDATE users SET is_active = true")
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    await db.execute("DELETE FROM users")
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401


async def test_an_accepted_token_does_not_vouch_for_a_changed_copy(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
) -> None:
    """Verified tokens are remembered by their whole string, signature included: a copy with
    other claims or another signature is verified afresh, and fails."""
    user_id = await make_user(db)
    token = jwt.encode(_claims(user_id), TEST_JWT_SECRET, algorithm="HS256")
    assert (await client.get("/api/auth/me", headers=auth(token))).status_code == 200
    header, payload, signature = token.split(".")
    other = _b64(_claims(uuid.uuid4()))
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    for changed in (f"{header}.{other}.{signature}", f"{header}.{payload}.{flipped}", token + "."):
        assert (await client.get("/api/auth/me", headers=auth(changed))).status_code == 401, changed
    assert (await client.get("/api/auth/me", headers=auth(token))).status_code == 200


def _verified(expires_at: float) -> VerifiedToken:
    return VerifiedToken(provider="local", subject="s", issued_at=0.0, expires_at=expires_at)


async def test_our_tokens_use_whole_seconds_like_every_issuer(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    for name in ("iat", "nbf", "exp"):
        assert type(claims[name]) is int, name
    assert claims["exp"] - claims["iat"] == tokens["expires_in"]
    assert claims["iat"] == claims["iat_us"] // 1_000_000


async def test_a_password_change_cuts_off_tokens_of_the_same_second_by_the_microsecond(
    client: httpx.AsyncClient, db: asyncpg.Connection, tokens: dict[str, str]
) -> None:
    changed = await client.patch(
        "/api/auth/me",
        headers=auth(tokens["access_token"]),
        json={"password": OTHER_STRONG_PASSWORD, "current_password": STRONG_PASSWORD},
    )
    assert changed.status_code == 200
    user_id = uuid.UUID(changed.json()["id"])
    cutoff = await db.fetchval(
        "SELECT (extract(epoch FROM tokens_valid_after) * 1000000)::bigint FROM users WHERE id = $1", user_id
    )

    def token_issued_at(microseconds: int) -> dict[str, str]:
        seconds = microseconds // 1_000_000
        claims = _claims(user_id, iat=seconds, nbf=seconds - 1, iat_us=microseconds)
        return auth(jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256"))

    # Integer `iat` alone cannot tell these apart when they share the cut-off's second.
    assert (await client.get("/api/auth/me", headers=token_issued_at(cutoff - 1))).status_code == 401
    assert (await client.get("/api/auth/me", headers=token_issued_at(cutoff))).status_code == 200
    assert (await client.get("/api/auth/me", headers=token_issued_at(cutoff + 1))).status_code == 200
    # And the real thing: a token issued right after the change, by logging in again.
    fresh = await login(client, password=OTHER_STRONG_PASSWORD)
    assert (await client.get("/api/auth/me", headers=auth(fresh.json()["access_token"]))).status_code == 200
    assert (await client.get("/api/auth/me", headers=auth(tokens["access_token"]))).status_code == 401


def test_a_remembered_token_is_forgotten_when_it_expires_or_its_ttl_ends() -> None:
    cache = VerifiedTokenCache(ttl_seconds=60, size=10)
    now = 1_000_000.0
    cache.put("short", _verified(expires_at=now + 10), now)
    cache.put("long", _verified(expires_at=now + 3600), now)
    assert cache.get("short", now + 9.9) is not None
    assert cache.get("short", now + 10) is None, "at exp the token goes back to its verifier"
    assert cache.get("long", now + 59.9) is not None
    assert cache.get("long", now + 60) is None, "after the TTL too, whatever exp says"
    assert len(cache) == 0


def test_the_cache_keeps_at_most_its_size_dropping_the_oldest() -> None:
    cache = VerifiedTokenCache(ttl_seconds=60, size=3)
    now = 1_000_000.0
    for name in ("a", "b", "c", "d"):
        cache.put(name, _verified(expires_at=now + 600), now)
    assert len(cache) == 3
    assert cache.get("a", now) is None
    assert all(cache.get(name, now) is not None for name in ("b", "c", "d"))


def test_a_route_that_reads_the_caller_without_authenticating_first_fails_closed() -> None:
    """authenticated_caller only returns a caller `authenticate` put on this request."""
    request: Request[Any, Any, Any] = Request({"type": "http", "method": "GET", "path": "/", "headers": []})  # type: ignore[typeddict-item]
    with pytest.raises(NotAuthorizedException):
        authenticated_caller(request)
