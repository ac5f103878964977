"""Cache-Control on every route of the app: answers that carry a token are `no-store` (RFC 6749
section 5.1), every other /api answer is `private` (no shared cache keeps it) and revalidated."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import asyncpg
import httpx
from litestar import Litestar
from litestar.routes import HTTPRoute

from service.app import create_app
from tests.accounts.conftest import STRONG_PASSWORD
from tests.conftest import caught_up_first, make_settings, running
from tests.reliability.routes import fill_path

# Writes that end the caller's sessions or account go last, so the routes before them still
# answer as the signed-in caller would see them.
_LAST = ("DELETE /api/users/{user_id:uuid}", "DELETE /api/v1/users/{user_id:uuid}")


def every_operation(app: Litestar) -> list[tuple[str, str]]:
    operations = [
        (method, route.path)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for method in sorted(route.methods)
        if method not in ("OPTIONS", "HEAD")
    ]
    # Reads first, then writes, then deletions, so fewer answers are 404 for a thing already gone.
    order = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 2, "DELETE": 3}
    return sorted(operations, key=lambda op: (f"{op[0]} {op[1]}" in _LAST, order[op[0]], op[1]))


def _carries_token(response: httpx.Response) -> bool:
    """A token in a JSON body, or the refresh token as a cookie (not the empty one that clears it)."""
    cookie = re.search(r"refresh_token=([^;]*)", response.headers.get("set-cookie", ""))
    if cookie is not None and cookie.group(1).strip('"'):
        return True
    if not response.headers.get("content-type", "").startswith("application/json"):
        return False
    body = response.json()
    return isinstance(body, dict) and bool({"access_token", "refresh_token"} & set(body))


async def _log_in(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    login = await client.post("/api/auth/login", data={"username": email, "password": STRONG_PASSWORD})
    assert login.status_code == 200, login.text
    tokens: dict[str, str] = login.json()
    return tokens


async def test_every_route_says_how_its_answers_may_be_cached(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    # Every sign-in route (and its /api/v1 twin) is called: more than the default sign-in budget.
    settings = make_settings(database_url, tmp_path, AUTH_COOKIES="on", AUTH_RATE_LIMIT_PER_MINUTE="1000")
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", event_hooks=caught_up_first(app)
        ) as client:
            email = f"cache-{uuid.uuid4().hex[:8]}@example.com"
            registered = await client.post(
                "/api/auth/register", json={"email": email, "password": STRONG_PASSWORD}
            )
            user_id = registered.json()["id"]
            first = await _log_in(client, email)
            await db.execute("UPDATE users SET role = 'admin' WHERE id = $1", uuid.UUID(user_id))
            second = await _log_in(client, email)  # a token issued after the promotion
            headers = {"Authorization": f"Bearer {second['access_token']}"}
            task = await client.post(f"/api/{user_id}/tasks", json={"title": "kept"}, headers=headers)
            assert task.status_code == 201, task.text
            values = {
                "user_id": user_id,
                "task_id": str(task.json()["id"]),
                "scan_id": str(uuid.uuid4()),
                "session_id": str(uuid.uuid4()),
                "file_path": "swagger-ui/swagger-ui.css",
                "path": "openapi.json",
            }
            answered: dict[str, httpx.Response] = {}
            for method, template in every_operation(app):
                path = fill_path(template, values)
                body: dict[str, object] = {}
                data = None
                if path.endswith("/auth/login"):
                    body, data = {}, {"username": "nobody@example.com", "password": "wrong"}
                elif path.endswith("/auth/refresh"):
                    body = {"refresh_token": first["refresh_token"]}
                response = await client.request(
                    method,
                    path,
                    headers=headers,
                    json=body if method != "GET" and data is None else None,
                    data=data,
                )
                answered[f"{method} {template}"] = response

            # A successful login and refresh, with the refresh cookie on.
            email = f"cache-{uuid.uuid4().hex[:8]}@example.com"
            await client.post("/api/auth/register", json={"email": email, "password": STRONG_PASSWORD})
            form = {"username": email, "password": STRONG_PASSWORD}
            answered["login (form)"] = await client.post("/api/auth/login", data=form)
            answered["login (JSON)"] = await client.post(
                "/api/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
            )
            assert answered["login (JSON)"].status_code == 200, answered["login (JSON)"].text
            refresh_token = answered["login (JSON)"].json()["refresh_token"]
            answered["refresh (body)"] = await client.post(
                "/api/auth/refresh", json={"refresh_token": refresh_token}
            )

    assert len(answered) >= 60, "every route, /api/v1 twins included"
    token_answers = []
    for name, response in answered.items():
        cache_control = response.headers.get("cache-control", "")
        # The account export (everything stored about the person) is kept by no cache either.
        carries_token = _carries_token(response) or name.endswith("/auth/me/export")
        if carries_token:
            token_answers.append(name)
            assert cache_control == "no-store", f"{name} carries a token: {cache_control!r}"
            if _carries_token(response):
                assert response.headers["pragma"] == "no-cache", name
        elif "/api/" in name or name.startswith(("login", "refresh")):
            assert cache_control == "private, no-cache", f"{name} ({response.status_code}): {cache_control!r}"
        assert "public" not in cache_control, name
    assert {"login (form)", "login (JSON)", "refresh (body)"} <= set(token_answers)
    assert {answered[name].status_code for name in token_answers} == {200}


async def test_a_304_is_private_too(client: httpx.AsyncClient) -> None:
    email = "etag@example.com"
    await client.post("/api/auth/register", json={"email": email, "password": STRONG_PASSWORD})
    login = await client.post("/api/auth/login", data={"username": email, "password": STRONG_PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    me = await client.get("/api/auth/me", headers=headers)
    again = await client.get("/api/auth/me", headers={**headers, "If-None-Match": me.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["cache-control"] == "private, no-cache"
    assert login.headers["cache-control"] == "no-store"
