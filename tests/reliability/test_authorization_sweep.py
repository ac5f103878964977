"""No cross-user read or write anywhere (OWASP API1, broken object level authorization).

The table is generated from the app's own routes, so a new route is swept without anyone
remembering to add it: every route that needs a token is called by the owner of a resource,
by other callers and anonymously, with every method it serves. A route with a path parameter
this file cannot fill, or a body it has no example for, fails until the tables below learn it.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from service.integrations.ai_service.demo import create_demo_app
from service.settings import Settings
from tests.conftest import bearer, make_settings, make_user
from tests.reliability.routes import fill_path, path_parameters, secured_routes
from tests.scans.conftest import serve_in_thread

SECRET = "victim-secret"


@dataclass(frozen=True)
class OtherCaller:
    """Someone who is not the resource's owner. `admitted` lists the route paths on which this
    caller may act on other users' resources, as the owner would."""

    name: str
    role: str
    admitted: frozenset[str] = field(default_factory=frozenset)


OTHER_CALLERS = (
    OtherCaller("another user", role="user"),
    # Administrators manage accounts (seed 003), never other users' tasks or scans.
    OtherCaller(
        "an admin",
        role="admin",
        admitted=frozenset(
            {
                "/api/users",
                "/api/users/{user_id:uuid}",
                "/api/users/{user_id:uuid}/sessions",
                "/api/audit-events",
            }
        ),
    ),
)

# Routes for administrators only, even on the caller's own account (users manage their own
# sessions under /api/auth/sessions): their owner is refused like anyone else who is not an admin.
ADMIN_ONLY = frozenset({"/api/users/{user_id:uuid}/sessions"})

# The one path parameter that names whose data a route is about: an intruder also tries its own
# value here together with the victim's other ids (GET /api/{me}/tasks/{victim's task}).
OWNER_PARAMETER = "user_id"

# A JSON or form body for each write, by method and route path (the /api/v1 twin shares it).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/{user_id:str}/tasks"): {"json": {"title": "written by the caller"}},
    ("PATCH", "/api/{user_id:str}/tasks/{task_id:int}"): {"json": {"title": "changed by the caller"}},
    ("PATCH", "/api/auth/me"): {"json": {"full_name": "changed by the caller"}},
    ("POST", "/api/auth/logout"): {},
    ("POST", "/api/auth/verify-email/resend"): {},
    ("POST", "/api/auth/2fa/totp"): {"json": {"current_password": "not the password"}},
    ("POST", "/api/auth/2fa/totp/confirm"): {"json": {"code": "123456"}},
    ("POST", "/api/auth/2fa/backup-codes"): {"json": {"code": "123456"}},
    ("POST", "/api/scan"): {"files": {"text": (None, "A tight budget.")}},
    ("PATCH", "/api/users/{user_id:uuid}"): {"json": {"full_name": "changed by the caller"}},
    ("PUT", "/api/users/{user_id:uuid}"): {"json": {"full_name": "changed by the caller"}},
}


SECURED_ROUTES = secured_routes()


@pytest.fixture(scope="module")
def demo_ai_url() -> Iterator[str]:
    with serve_in_thread(create_demo_app()) as url:
        yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path, demo_ai_url: str) -> Settings:
    """Scans reach a real AI service, so a scan request succeeds or fails for its own reasons."""
    return make_settings(database_url, tmp_path, AI_SERVICE_URL=demo_ai_url)


@dataclass
class Victim:
    id: uuid.UUID
    headers: dict[str, str]
    ids: dict[str, str]


async def _insert_scan(db: asyncpg.Connection, user_id: uuid.UUID) -> str:
    risks = json.dumps([{"risk": SECRET, "category": "Financial", "context": SECRET}])
    scan_id = await db.fetchval(
        "INSERT INTO scans (user_id, filename, data, source) "
        "VALUES ($1, $2, $3::jsonb, 'model') RETURNING id",
        user_id,
        f"{SECRET}.txt",
        risks,
    )
    return str(scan_id)


async def _insert_task(db: asyncpg.Connection, user_id: uuid.UUID) -> str:
    task_id = await db.fetchval(
        "INSERT INTO tasks (user_id, title, description) VALUES ($1, $2, $2) RETURNING id", user_id, SECRET
    )
    return str(task_id)


# How to make a resource of the victim's for each path parameter a route may have.
async def _insert_session(db: asyncpg.Connection, user_id: uuid.UUID) -> str:
    family_id = await db.fetchval(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) "
        "VALUES (sha256(gen_random_uuid()::text::bytea), gen_random_uuid(), $1, now() + interval '1 day') "
        "RETURNING family_id",
        user_id,
    )
    return str(family_id)


RESOURCES: dict[str, Callable[[asyncpg.Connection, uuid.UUID], Awaitable[str]]] = {
    "task_id": _insert_task,
    "scan_id": _insert_scan,
    "session_id": _insert_session,
}


async def _victim(db: asyncpg.Connection, settings: Settings) -> Victim:
    user_id = await make_user(db, f"{SECRET}-{uuid.uuid4().hex[:6]}@example.com")
    ids = {OWNER_PARAMETER: str(user_id)}
    for name, make in RESOURCES.items():
        ids[name] = await make(db, user_id)
    return Victim(user_id, bearer(settings, user_id), ids)


async def _snapshot(db: asyncpg.Connection, user_id: uuid.UUID) -> list[Any]:
    """Everything of the victim's a request could change."""
    rows = []
    tables = (("users", "id"), ("tasks", "user_id"), ("scans", "user_id"), ("refresh_tokens", "user_id"))
    for table, key in tables:
        rows += await db.fetch(f"SELECT to_jsonb(t) AS r FROM {table} t WHERE {key} = $1 ORDER BY 1", user_id)
    return [row["r"] for row in rows]


def _fill(path: str, values: dict[str, str]) -> str:
    missing = [name for name in path_parameters(path) if name not in values]
    if missing:
        pytest.fail(f"{path}: no way to make a {missing[0]}; add one to RESOURCES")
    return fill_path(path, values)


def _request_for(method: str, path: str) -> dict[str, Any]:
    twin = path.replace("/api/v1/", "/api/", 1)
    if method in ("GET", "DELETE"):
        return {}
    if (method, twin) not in BODIES:
        pytest.fail(f"{method} {path}: add an example body to BODIES")
    return BODIES[(method, twin)]


def _intrusions(path: str, victim: Victim, own_id: str) -> list[str]:
    """The victim's resource by the victim's ids, and, where the path names its owner, by the
    caller's own id with the victim's other ids; never a URL that is wholly the caller's own."""
    parameters = path_parameters(path)
    choices = [
        [victim.ids[p], own_id] if p == OWNER_PARAMETER else [victim.ids.get(p, "")] for p in parameters
    ]
    urls = []
    for combination in itertools.product(*choices):
        if all(value == own_id for value in combination):
            continue
        urls.append(_fill(path, dict(zip(parameters, combination, strict=True))))
    return urls


ROUTE_IDS = [f"{method} {path}" for method, path in SECURED_ROUTES]


@pytest.mark.parametrize(("method", "path"), SECURED_ROUTES, ids=ROUTE_IDS)
async def test_only_the_owner_reaches_a_resource(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings, method: str, path: str
) -> None:
    victim = await _victim(db, settings)
    before = await _snapshot(db, victim.id)
    request = _request_for(method, path)

    anonymous = await client.request(method, _fill(path, victim.ids), **request)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"

    deleted_by_an_admitted_caller = False
    for caller in OTHER_CALLERS:
        intruder_id = await make_user(db, role=caller.role)
        admitted = path.replace("/api/v1/", "/api/", 1) in caller.admitted
        own_ids = {name: str(uuid.uuid4()) for name in RESOURCES} | {OWNER_PARAMETER: str(intruder_id)}
        urls = _intrusions(path, victim, str(intruder_id)) if "{" in path else [_fill(path, own_ids)]
        for url in urls:
            # A fresh token each time: a logout ends the token it is sent with.
            response = await client.request(method, url, headers=bearer(settings, intruder_id), **request)
            seen = (caller.name, url, response.status_code, response.text)
            if admitted:
                assert response.status_code < 300, seen
                deleted_by_an_admitted_caller |= method == "DELETE"
                continue
            assert response.status_code < 500, seen
            if "{" in path:
                assert response.status_code in (403, 404), seen
            assert SECRET not in response.text, seen
        if not admitted:
            assert await _snapshot(db, victim.id) == before, caller.name

    if (
        "{" in path
        and not deleted_by_an_admitted_caller
        and path.replace("/api/v1/", "/api/", 1) not in ADMIN_ONLY
    ):
        # The URLs refused to others work for their owner: the refusals are about who asks,
        # not about a URL that reaches nothing.
        owned = await client.request(method, _fill(path, victim.ids), headers=victim.headers, **request)
        assert owned.status_code < 300, owned.text


def test_the_sweep_covers_every_kind_of_route() -> None:
    paths = {path for _, path in SECURED_ROUTES}
    assert {"/api/{user_id:str}/tasks/{task_id:int}", "/api/scans/{scan_id:uuid}", "/api/auth/me"} <= paths
    assert any(path.startswith("/api/v1/") for path in paths)
