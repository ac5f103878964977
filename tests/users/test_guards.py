"""Every guard decision: caller (anonymous, the user themself, another user, an admin) x route x method."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from service.settings import Settings
from tests.users.conftest import Account, make_account

CALLERS = ("anonymous", "self", "other", "admin")
ADMIN_ONLY = {"anonymous": 401, "self": 403, "other": 403, "admin": 200}
SELF_OR_ADMIN = {"anonymous": 401, "self": 200, "other": 403, "admin": 200}

# (method, path with {id} for the target user, JSON body, expected status per caller)
DECISIONS: list[tuple[str, str, Any, dict[str, int]]] = [
    ("GET", "/users", None, ADMIN_ONLY),
    ("GET", "/users/{id}", None, SELF_OR_ADMIN),
    ("PATCH", "/users/{id}", {"full_name": "Ada L."}, SELF_OR_ADMIN),
    ("PUT", "/users/{id}", {"full_name": "Ada L."}, SELF_OR_ADMIN),
    ("PATCH", "/users/{id}", {"role": "admin"}, ADMIN_ONLY),
    ("PUT", "/users/{id}", {"role": "admin"}, ADMIN_ONLY),
    ("PATCH", "/users/{id}", {"is_active": False}, ADMIN_ONLY),
    ("DELETE", "/users/{id}", None, {"anonymous": 401, "self": 204, "other": 403, "admin": 204}),
    ("GET", "/audit-events", None, ADMIN_ONLY),
]


@pytest.mark.parametrize("prefix", ["/api", "/api/v1"])
@pytest.mark.parametrize(("method", "path", "body", "expected"), DECISIONS)
async def test_guard_decision(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    settings: Settings,
    prefix: str,
    method: str,
    path: str,
    body: Any,
    expected: dict[str, int],
) -> None:
    answers = {}
    for caller in CALLERS:
        # A fresh target per caller: a delete or demotion must not change the next row of the table.
        target = await make_account(db, settings)
        callers: dict[str, Account | None] = {
            "anonymous": None,
            "self": target,
            "other": await make_account(db, settings),
            "admin": await make_account(db, settings, "admin"),
        }
        account = callers[caller]
        response = await client.request(
            method,
            prefix + path.format(id=target.id),
            json=body,
            headers=account.headers if account else {},
        )
        answers[caller] = response.status_code
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"]
        if response.status_code == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert answers == expected


async def test_an_absent_user_is_404_for_an_admin_and_403_for_anyone_else(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    absent = uuid.uuid4()
    assert (await client.get(f"/api/users/{absent}", headers=admin.headers)).status_code == 404
    assert (await client.patch(f"/api/users/{absent}", json={}, headers=admin.headers)).status_code == 404
    assert (await client.delete(f"/api/users/{absent}", headers=admin.headers)).status_code == 404
    # Decided from the id alone, so a non-admin learns nothing about which ids exist.
    assert (await client.get(f"/api/users/{absent}", headers=user.headers)).status_code == 403


async def test_a_malformed_id_is_404(client: httpx.AsyncClient, admin: Account) -> None:
    response = await client.get("/api/users/not-a-uuid", headers=admin.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
