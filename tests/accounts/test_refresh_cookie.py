"""AUTH_COOKIES=on: the refresh token also travels as an HttpOnly cookie, guarded by an Origin check.

Cookies are read from Set-Cookie and sent back as a Cookie header by hand: the cookie is Secure,
which a cookie jar would (rightly) not send to this plain-http test client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.settings import SettingsError
from tests.accounts.conftest import STRONG_PASSWORD, register
from tests.conftest import make_settings, running

FRONTEND = "http://localhost:5173"
THIRTY_DAYS = 30 * 24 * 3600

CookieClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def cookie_client(database_url: str, tmp_path: Path, db: asyncpg.Connection) -> CookieClient:
    @asynccontextmanager
    async def open_client(
        base_url: str = "http://testserver", **env: str
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(database_url, tmp_path, AUTH_COOKIES="on", **env))
        async with running(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
                yield client

    return open_client


def refresh_cookie(response: httpx.Response) -> dict[str, str]:
    """The refresh_token cookie the response set: its value and attributes, lowercased names."""
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    header = headers[0]
    parsed = SimpleCookie()
    parsed.load(header)
    morsel = parsed["refresh_token"]
    attributes = {key: str(value) for key, value in morsel.items() if value}
    flags = {part.strip().lower() for part in header.split(";")}
    attributes["httponly"] = str("httponly" in flags)
    attributes["secure"] = str("secure" in flags)
    return {"value": morsel.value, **attributes}


async def _login(client: httpx.AsyncClient, prefix: str = "/api") -> httpx.Response:
    await register(client)
    response = await client.post(
        f"{prefix}/auth/login", data={"username": "ada@example.com", "password": STRONG_PASSWORD}
    )
    assert response.status_code == 200
    return response


async def _cookie_refresh(client: httpx.AsyncClient, token: str, **headers: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", headers={"Cookie": f"refresh_token={token}", **headers})


async def test_login_sets_the_refresh_cookie_and_keeps_the_json_body(cookie_client: CookieClient) -> None:
    async with cookie_client() as client:
        response = await _login(client)
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    cookie = refresh_cookie(response)
    assert cookie["value"] == body["refresh_token"]
    assert cookie["httponly"] == "True"
    assert cookie["secure"] == "True"
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/api/auth"
    assert THIRTY_DAYS - 60 <= int(cookie["max-age"]) <= THIRTY_DAYS
    assert "domain" not in cookie
    assert "access_token" not in response.headers["set-cookie"]


async def test_a_bodyless_refresh_uses_the_cookie_and_rotates_it(
    cookie_client: CookieClient, db: asyncpg.Connection
) -> None:
    async with cookie_client() as client:
        first = refresh_cookie(await _login(client))["value"]
        await db.execute("UPDATE refresh_tokens SET expires_at = now() + interval '1 hour'")
        response = await _cookie_refresh(client, first, Origin=FRONTEND)
        assert response.status_code == 200, response.text
        rotated = refresh_cookie(response)
        assert rotated["value"] == response.json()["refresh_token"] != first
        assert 3500 <= int(rotated["max-age"]) <= 3600, "the family's remaining lifetime"
        assert (
            await client.get(
                "/api/auth/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
            )
        ).status_code == 200
        replayed = await _cookie_refresh(client, first, Origin=FRONTEND)
        assert replayed.status_code == 401
        assert refresh_cookie(replayed)["max-age"] == "0", "a refused cookie is cleared"


async def test_a_json_refresh_works_as_before_and_also_sets_the_cookie(cookie_client: CookieClient) -> None:
    async with cookie_client() as client:
        token = (await _login(client)).json()["refresh_token"]
        response = await client.post("/api/auth/refresh", json={"refresh_token": token})
    assert response.status_code == 200
    assert refresh_cookie(response)["value"] == response.json()["refresh_token"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page"},
        {},
    ],
    ids=["foreign-origin", "null-origin", "foreign-referer", "neither"],
)
async def test_a_cookie_refresh_from_elsewhere_is_403_and_spends_nothing(
    cookie_client: CookieClient, headers: dict[str, str]
) -> None:
    async with cookie_client() as client:
        token = refresh_cookie(await _login(client))["value"]
        refused = await _cookie_refresh(client, token, **headers)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert "CORS_ORIGINS" in refused.json()["detail"]
        assert (await _cookie_refresh(client, token, Referer=f"{FRONTEND}/app")).status_code == 200, (
            "a Referer from a listed origin stands in for a missing Origin"
        )


async def test_a_bodyless_refresh_without_a_cookie_is_401(cookie_client: CookieClient) -> None:
    async with cookie_client() as client:
        response = await client.post("/api/auth/refresh", headers={"Origin": FRONTEND})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_logout_clears_the_cookie(cookie_client: CookieClient) -> None:
    async with cookie_client() as client:
        login = await _login(client)
        token = login.json()
        response = await client.post(
            "/api/auth/logout", headers={"Authorization": f"Bearer {token['access_token']}"}
        )
        assert response.status_code == 204
        cleared = refresh_cookie(response)
        assert cleared["max-age"] == "0"
        assert cleared["path"] == "/api/auth"
        assert (await _cookie_refresh(client, token["refresh_token"], Origin=FRONTEND)).status_code == 401


async def test_the_versioned_paths_get_a_cookie_of_their_own_path(cookie_client: CookieClient) -> None:
    async with cookie_client() as client:
        assert refresh_cookie(await _login(client, "/api/v1"))["path"] == "/api/v1/auth"


async def test_samesite_and_domain_follow_the_settings(cookie_client: CookieClient) -> None:
    async with cookie_client(AUTH_COOKIE_SAMESITE="none", AUTH_COOKIE_DOMAIN="example.com") as client:
        cookie = refresh_cookie(await _login(client))
    assert cookie["samesite"].lower() == "none"
    assert cookie["secure"] == "True"
    assert cookie["domain"] == "example.com"


async def test_development_on_plain_http_localhost_drops_secure_unless_samesite_is_none(
    cookie_client: CookieClient,
) -> None:
    async with cookie_client("http://localhost:8000", ENVIRONMENT="development") as client:
        assert refresh_cookie(await _login(client))["secure"] == "False"
    async with cookie_client(
        "http://localhost:8000", ENVIRONMENT="development", AUTH_COOKIE_SAMESITE="lax"
    ) as client:
        cookie = refresh_cookie(
            await client.post(
                "/api/auth/login", data={"username": "ada@example.com", "password": STRONG_PASSWORD}
            )
        )
        assert cookie["secure"] == "False"
        assert cookie["samesite"].lower() == "lax"
    async with cookie_client(
        "http://localhost:8000", ENVIRONMENT="development", AUTH_COOKIE_SAMESITE="none"
    ) as client:
        cookie = refresh_cookie(
            await client.post(
                "/api/auth/login", data={"username": "ada@example.com", "password": STRONG_PASSWORD}
            )
        )
        assert cookie["secure"] == "True", "browsers refuse SameSite=None without Secure"


async def test_with_cookies_off_nothing_changes(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    login = await client.post(
        "/api/auth/login", data={"username": "ada@example.com", "password": STRONG_PASSWORD}
    )
    assert "set-cookie" not in login.headers
    response = await client.post(
        "/api/auth/refresh",
        headers={"Cookie": f"refresh_token={tokens['refresh_token']}", "Origin": FRONTEND},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "refresh_token"


def test_cookies_are_off_by_default(tmp_path: Path) -> None:
    settings = make_settings("postgresql://127.0.0.1:9/unused", tmp_path)
    assert (settings.auth_cookies, settings.auth_cookie_samesite, settings.auth_cookie_domain) == (
        "off",
        "strict",
        None,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AUTH_COOKIES": "yes"}, "AUTH_COOKIES"),
        ({"AUTH_COOKIE_SAMESITE": "always"}, "AUTH_COOKIE_SAMESITE"),
        ({"AUTH_COOKIE_DOMAIN": "https://example.com"}, "AUTH_COOKIE_DOMAIN"),
        ({"AUTH_COOKIE_DOMAIN": "example.com/api"}, "AUTH_COOKIE_DOMAIN"),
        ({"AUTH_COOKIES": "on", "CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
    ],
)
def test_bad_cookie_settings_are_refused_at_start_up(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    with pytest.raises(SettingsError, match=variable):
        make_settings("postgresql://127.0.0.1:9/unused", tmp_path, **env)
