"""Audit rows for every admin change, written with the change, and the admin's view of them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from service.observability.audit import ActorRef, RequestOrigin, Target, record_event
from service.settings import Settings
from tests.users.conftest import Account, make_account

BROWSER = {"User-Agent": "audit-test-browser/1.0"}


async def rows(db: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every event, oldest first, with details decoded (the test connection has no JSON codec)."""
    records = await db.fetch("SELECT * FROM audit_events ORDER BY id")
    return [{**record, "details": json.loads(record["details"])} for record in records]


async def test_each_admin_change_is_one_event_with_actor_target_and_origin(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    admin: Account,
    user: Account,
) -> None:
    path = f"/api/users/{user.id}"
    headers = {**admin.headers, **BROWSER}
    assert (await client.patch(path, json={"full_name": "Ada"}, headers=headers)).status_code == 200
    assert (await client.patch(path, json={"role": "admin"}, headers=headers)).status_code == 200
    assert (await client.patch(path, json={"is_active": False}, headers=headers)).status_code == 200
    assert (await client.patch(path, json={"is_active": True}, headers=headers)).status_code == 200
    assert (await client.delete(path, headers=headers)).status_code == 204

    events = await rows(db)
    assert [(e["action"], e["details"]) for e in events] == [
        ("user.updated", {"email": user.email, "fields": ["full_name"]}),
        ("user.role_changed", {"email": user.email, "from": "user", "to": "admin"}),
        ("user.deactivated", {"email": user.email}),
        ("user.reactivated", {"email": user.email}),
        ("user.deleted", {"email": user.email, "role": "admin", "provider": "local"}),
    ]
    for event in events:
        assert event["actor_id"] == admin.id
        assert event["actor_email"] == admin.email
        assert (event["target_type"], event["target_id"]) == ("user", str(user.id))
        assert event["ip"] == "127.0.0.1"
        assert event["user_agent"] == BROWSER["User-Agent"]


async def test_one_request_changing_several_things_writes_one_event_per_kind(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    admin: Account,
    user: Account,
) -> None:
    body = {"full_name": "Ada", "role": "admin", "is_active": False}
    assert (await client.patch(f"/api/users/{user.id}", json=body, headers=admin.headers)).status_code == 200
    assert [e["action"] for e in await rows(db)] == ["user.updated", "user.role_changed", "user.deactivated"]


async def test_no_change_no_event_and_a_refused_change_leaves_no_event(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    admin: Account,
    user: Account,
) -> None:
    same = {"role": "user", "full_name": None}
    await client.patch(f"/api/users/{user.id}", json=same, headers=admin.headers)
    await client.patch(f"/api/users/{admin.id}", json={"role": "user"}, headers=admin.headers)  # 409
    await client.patch(f"/api/users/{user.id}", json={"role": "admin"}, headers=user.headers)  # 403
    assert await rows(db) == []


# -- GET /api/audit-events ----------------------------------------------------------------------


async def seed_events(app: Litestar, db: asyncpg.Connection, actor: Account) -> None:
    pool = app.state.pool
    origin = RequestOrigin(ip="203.0.113.9", user_agent="seed")
    await record_event(pool, "auth.login_failed", origin=origin, details={"email": "x@example.com"})
    await record_event(pool, "auth.login", origin=origin, actor=actor)
    await record_event(
        pool, "user.deleted", origin=origin, actor=ActorRef(actor.id, None), target=Target("user", "1")
    )
    await db.execute("UPDATE audit_events SET at = at - interval '2 days' WHERE action = 'auth.login_failed'")


async def test_newest_first_with_filters_and_a_total(
    app: Litestar,
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    admin: Account,
    user: Account,
) -> None:
    await seed_events(app, db, user)

    async def actions(**params: str) -> list[str]:
        response = await client.get("/api/audit-events", params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] >= len(page["items"])
        return [item["action"] for item in page["items"]]

    assert await actions() == ["user.deleted", "auth.login", "auth.login_failed"]
    assert await actions(action="auth.login") == ["auth.login"]
    assert await actions(actor_id=str(user.id)) == ["user.deleted", "auth.login"]
    day_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert await actions(since=day_ago) == ["user.deleted", "auth.login"]
    assert await actions(until=day_ago) == ["auth.login_failed"]
    naive_day_ago = (datetime.now(UTC) - timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert await actions(until=naive_day_ago) == ["auth.login_failed"]
    assert await actions(actor_id=str(uuid.uuid4())) == []

    page = (await client.get("/api/v1/audit-events?limit=1&offset=1", headers=admin.headers)).json()
    assert [item["action"] for item in page["items"]] == ["auth.login"]
    assert (page["total"], page["limit"], page["offset"]) == (3, 1, 1)
    event = page["items"][0]
    assert event["actor_id"] == str(user.id)
    assert event["actor_email"] == user.email
    assert event["ip"] == "203.0.113.9"
    assert event["details"] == {}
    assert set(event) == {"id", "at", "actor_id", "actor_email", "action", "target_type", "target_id"} | {
        "ip",
        "user_agent",
        "details",
    }


@pytest.mark.parametrize(
    "query",
    [
        "action=DROP TABLE",
        "action=" + "a" * 101,
        "actor_id=42",
        "since=yesterday",
        "since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z",
        "limit=0",
        "limit=201",
        "offset=-1",
    ],
)
async def test_bad_filters_are_400(client: httpx.AsyncClient, admin: Account, query: str) -> None:
    response = await client.get(f"/api/audit-events?{query}", headers=admin.headers)
    assert response.status_code == 400
    assert response.json()["detail"]


async def test_the_view_of_events_is_itself_not_an_event(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    settings: Settings,
    admin: Account,
) -> None:
    await make_account(db, settings)
    await client.get("/api/audit-events", headers=admin.headers)
    assert await rows(db) == []
