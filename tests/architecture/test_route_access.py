"""One way to authenticate a route (service/security/guards.py): every route under /api that is not
public declares its requirement as its `before_request` hook, built by `access`; no route uses a
Litestar guard."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from service.app import create_app
from service.security import guards
from tests.conftest import make_settings

# The routes anyone may call, without a token (each answers for itself what it checks).
PUBLIC = {
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),  # the OAuth2 password flow's token endpoint
    ("POST", "/auth/refresh"),
    ("POST", "/auth/verify-email"),
    ("POST", "/auth/forgot-password"),
    ("POST", "/auth/reset-password"),
    ("POST", "/auth/2fa/verify"),  # the second step of a login: the mfa_token is the credential
}
API_PREFIXES = ("/api/v1", "/api")  # health, metrics and the docs pages are outside /api


def _api_operations(app: Litestar) -> list[tuple[str, str, object]]:
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        prefix = next((p for p in API_PREFIXES if route.path.startswith(p + "/")), None)
        if prefix is None:
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if method == "OPTIONS":
                continue  # Litestar's own, answered by service.compat.litestar
            found.append((method, route.path.removeprefix(prefix), handler))
    return found


def _app(tmp_path: Path) -> Litestar:
    return create_app(make_settings("postgresql://nowhere", tmp_path))


def test_every_api_route_is_public_or_declares_its_requirement_through_access(tmp_path: Path) -> None:
    operations = _api_operations(_app(tmp_path))
    assert len(operations) > 40, "the walk found too few routes: did the app's layout change?"
    undeclared = []
    for method, path, handler in operations:
        hook = handler.resolve_before_request()  # type: ignore[attr-defined]
        requirement = getattr(hook, guards.REQUIREMENT_ATTRIBUTE, None)
        if (method, path) in PUBLIC:
            assert requirement is None, f"{method} {path} is listed as public but requires {requirement}"
        elif requirement is None:
            undeclared.append(f"{method} {path} (before_request: {hook})")
    assert not undeclared, "routes without before_request=access(...):\n" + "\n".join(undeclared)


def test_every_public_route_exists(tmp_path: Path) -> None:
    served = {(method, path) for method, path, _ in _api_operations(_app(tmp_path))}
    assert served >= PUBLIC, PUBLIC - served


def test_no_api_route_uses_a_litestar_guard(tmp_path: Path) -> None:
    """A guard costs a copy of the route handler per call (Litestar 2.25's authorize_connection),
    and two mechanisms would be two orders of answers to keep right."""
    guarded = [
        f"{method} {path}"
        for method, path, handler in _api_operations(_app(tmp_path))
        if handler.resolve_guards()  # type: ignore[attr-defined]
    ]
    assert not guarded


def test_access_accepts_only_a_requirement() -> None:
    async def not_a_requirement(_: object) -> None:
        return None

    with pytest.raises(TypeError):
        guards.access(not_a_requirement)


BIG_JSON = b'{"x": "' + b"a" * 16 * 1024 + b'"}'
JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain"}


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/auth/logout"), ("PATCH", "/api/auth/me")])
async def test_body_first_routes_answer_415_then_413_then_401(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """access(..., body_first=True): the body's checks come before the token's."""
    assert (await client.request(method, path, content=b"{}", headers=TEXT)).status_code == 415
    assert (await client.request(method, path, content=BIG_JSON, headers=JSON)).status_code == 413
    assert (await client.request(method, path, content=b"{}", headers=JSON)).status_code == 401


async def test_other_routes_answer_401_before_looking_at_the_body(client: httpx.AsyncClient) -> None:
    for method, path in (("DELETE", "/api/auth/me"), ("POST", "/api/auth/2fa/totp"), ("POST", "/api/scan")):
        for content, headers in ((b"{}", TEXT), (BIG_JSON, JSON)):
            response = await client.request(method, path, content=content, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
    response = await client.post("/api/someone/tasks", content=b"{}", headers=TEXT)
    assert response.status_code == 401


# A value for each kind of path parameter, so that every route can be called.
_PARAMETER_VALUES = {"uuid": "00000000-0000-4000-8000-000000000001", "int": "1", "str": "x", "path": "x"}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}:]+:([a-z]+)\}", lambda match: _PARAMETER_VALUES[match.group(1)], path)


async def test_options_needs_no_token_and_every_other_method_still_does(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """A plain OPTIONS (not a CORS preflight: no Origin) answers 204 with the path's methods on
    every /api route, token or not: Litestar's generated OPTIONS handler would otherwise inherit
    its controller's `before_request=access(...)` and answer 401. Every other method of a
    protected route still answers 401 without a token."""
    walked = protected = 0
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or "OPTIONS" not in route.route_handler_map:
            continue
        prefix = next((p for p in API_PREFIXES if route.path.startswith(p + "/")), None)
        if prefix is None:
            continue
        url = _concrete(route.path)
        answer = await client.options(url)
        assert answer.status_code == 204, (route.path, answer.status_code, answer.text)
        assert set(answer.headers["allow"].split(", ")) == set(route.methods), route.path
        walked += 1
        for method in sorted(route.methods - {"OPTIONS"}):
            if (method, route.path.removeprefix(prefix)) in PUBLIC:
                continue
            response = await client.request(method, url, content=b"{}", headers=JSON)
            assert response.status_code == 401, (method, route.path, response.status_code, response.text)
            protected += 1
    assert walked > 40, "the walk found too few paths: did the app's layout change?"
    assert protected > 40, "the walk found too few protected methods"
