"""Access tokens: only a genuine, current access token of an active user gets through."""

import base64
import json
import time
import uuid

import asyncpg
import httpx
import jwt

from service.security.tokens import AUDIENCE, ISSUER
from service.settings import Settings
from tests.accounts.conftest import auth
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
