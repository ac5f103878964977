"""The refresh token as an HttpOnly cookie (AUTH_COOKIES=on), for browser frontends.

Only the refresh token travels as a cookie, and only to the auth routes (its Path); access
tokens stay bearer-only, so no other route can be driven by a cross-site request. A refresh
authenticated by the cookie is accepted only from an Origin (or, lacking one, a Referer) listed
in CORS_ORIGINS: the browser attaches the cookie whoever made the page, the Origin says who did.

A login sets that cookie, so with cookies on a login is held to the same list (login CSRF: a
foreign page posting the attacker's credentials would sign the browser into the attacker's
account). There the credentials are in the body, not in an ambient cookie, so a login with
neither header (curl, a server-side client: browsers send Origin on every POST) goes ahead.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from service.accounts import queries
from service.http.errors import invalid_field
from service.sessions.models import Token
from service.sessions.refresh_tokens import refresh_token_digest
from service.settings import Settings

REFRESH_COOKIE = "refresh_token"
# RFC 6749 section 5.1: a token answer is stored by no cache (Pragma for HTTP/1.0 ones).
TOKEN_CACHE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


def cookies_on(settings: Settings) -> bool:
    return settings.auth_cookies == "on"


def _cookie_path(request: Request[Any, Any, Any]) -> str:
    """/api/auth, or /api/v1/auth for a frontend on the versioned paths: the cookie goes back
    only to the auth routes it came from."""
    return "/api/v1/auth" if request.url.path.startswith("/api/v1/") else "/api/auth"


def _secure(settings: Settings, request: Request[Any, Any, Any]) -> bool:
    """Always, except in development on plain-http localhost; SameSite=None requires it anyway."""
    if settings.auth_cookie_samesite == "none" or settings.environment != "development":
        return True
    return not (request.url.scheme == "http" and (request.url.hostname or "") in _LOOPBACK_HOSTS)


def _refresh_cookie(settings: Settings, request: Request[Any, Any, Any], value: str, max_age: int) -> Cookie:
    return Cookie(
        key=REFRESH_COOKIE,
        value=value,
        max_age=max_age,
        path=_cookie_path(request),
        domain=settings.auth_cookie_domain,
        secure=_secure(settings, request),
        httponly=True,
        samesite=settings.auth_cookie_samesite,
    )


def clearing_cookie(settings: Settings, request: Request[Any, Any, Any]) -> Cookie:
    return _refresh_cookie(settings, request, "", 0)


async def token_response(
    pool: asyncpg.Pool, settings: Settings, request: Request[Any, Any, Any], token: Token
) -> Response[Token]:
    """The token pair as JSON, and with AUTH_COOKIES=on the refresh token as a cookie that
    lives as long as its family has left. Never stored by any cache (RFC 6749 section 5.1)."""
    if not cookies_on(settings):
        return Response(token, headers=TOKEN_CACHE_HEADERS)
    expires_at = await queries.get_refresh_expiry(pool, refresh_token_digest(token.refresh_token))
    remaining = (expires_at - datetime.datetime.now(datetime.UTC)).total_seconds() if expires_at else 0
    cookie = _refresh_cookie(settings, request, token.refresh_token, max(0, int(remaining)))
    return Response(token, cookies=[cookie], headers=TOKEN_CACHE_HEADERS)


def _request_origin(request: Request[Any, Any, Any]) -> str | None:
    origin = request.headers.get("origin")
    if origin is not None:
        return origin
    referer = request.headers.get("referer")
    if not referer:
        return None
    try:
        parts = urlsplit(referer)
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def _allowed_origin(settings: Settings, origin: str) -> bool:
    return origin.rstrip("/").lower() in {entry.rstrip("/").lower() for entry in settings.browser_origins}


def _check_origin(settings: Settings, request: Request[Any, Any, Any]) -> None:
    origin = _request_origin(request)
    if origin is None or not _allowed_origin(settings, origin):
        shown = origin if origin is not None else "no Origin or Referer"
        raise PermissionDeniedException(
            f"a refresh through the cookie is accepted only from an origin in CORS_ORIGINS ({shown})"
        )


def check_login_origin(settings: Settings, request: Request[Any, Any, Any]) -> None:
    """With AUTH_COOKIES=on, 403 for a login whose Origin (or, lacking one, Referer) is not in
    CORS_ORIGINS, `null` included; a login with neither header is not a browser's and goes ahead."""
    if not cookies_on(settings):
        return
    origin = _request_origin(request)
    if origin is not None and not _allowed_origin(settings, origin):
        raise PermissionDeniedException(
            f"with the refresh cookie on, a login is accepted only from an origin in CORS_ORIGINS ({origin})"
        )


def refresh_token_from_cookie(settings: Settings, request: Request[Any, Any, Any]) -> str:
    """The refresh token of a body-less refresh: the cookie's, from an allowed origin only."""
    if not cookies_on(settings):
        raise invalid_field("refresh_token", "Object missing required field `refresh_token`")
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise NotAuthorizedException('no refresh token: send {"refresh_token": ...} or the refresh cookie')
    _check_origin(settings, request)
    return token


def refused_cookie(
    settings: Settings, request: Request[Any, Any, Any], exc: NotAuthorizedException
) -> NotAuthorizedException:
    """The same 401, also clearing the cookie whose token was refused: the browser stops sending it."""
    cookie = clearing_cookie(settings, request)
    return NotAuthorizedException(exc.detail, headers={"Set-Cookie": cookie.to_header(header="")})
