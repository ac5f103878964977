"""Mixed concurrent traffic from two hosts through PgBouncer in transaction mode: not one error.

Three workers (host A with two, host B with one) hold up to 15 client connections while PgBouncer
keeps at most 8 server connections, so consecutive statements of one client land on different
server sessions: anything that relied on session state (a named prepared statement, a SET, a
session-level advisory lock) would fail here.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx

from tests.processes import ServiceProcess, demo_ai, serve

USERS = 16
PASSWORD = "correct horse battery staple"

EXPECTED = [
    ("register", 201),
    ("login", 200),
    ("refresh", 200),
    ("me", 200),
    *[("create task", 201)] * 3,
    ("list tasks", 200),
    ("get task", 200),
    ("complete task", 200),
    ("delete task", 204),
    ("get deleted task", 404),
    ("scan", 201),
    ("list scans", 200),
    ("get scan", 200),
    ("delete scan", 204),
    ("ready", 200),
    ("logout", 204),
    ("me after logout", 401),
    ("login again", 200),
    ("delete account", 204),
    ("login after deletion", 401),
]


async def _one_user(http: httpx.AsyncClient, hosts: itertools.cycle[str]) -> list[tuple[str, int]]:
    """One frontend's session; a round-robin load balancer sends each request to the next host."""
    seen: list[tuple[str, int]] = []

    async def call(step: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = await http.request(method, f"{next(hosts)}{path}", **kwargs)  # type: ignore[arg-type]
        assert response.status_code < 500, f"{step}: {response.status_code} {response.text}"
        seen.append((step, response.status_code))
        return response

    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    await call("register", "POST", "/api/auth/register", json={"email": email, "password": PASSWORD})
    credentials = {"username": email, "password": PASSWORD}
    login = await call("login", "POST", "/api/auth/login", data=credentials)
    refreshed = await call(
        "refresh", "POST", "/api/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    tokens = refreshed.json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    user_id = (await call("me", "GET", "/api/auth/me", headers=auth)).json()["id"]

    tasks = f"/api/{user_id}/tasks"
    created = [
        (await call("create task", "POST", tasks, headers=auth, json={"title": f"Task {n}"})).json()["id"]
        for n in range(3)
    ]
    listed = await call("list tasks", "GET", tasks, headers=auth)
    assert listed.headers["x-total-count"] == "3"
    await call("get task", "GET", f"{tasks}/{created[0]}", headers=auth)
    await call("complete task", "PATCH", f"{tasks}/{created[0]}", headers=auth, json={"is_completed": True})
    await call("delete task", "DELETE", f"{tasks}/{created[1]}", headers=auth)
    await call("get deleted task", "GET", f"{tasks}/{created[1]}", headers=auth)

    text = "The budget is already stretched. We depend on a single vendor."
    scan = await call("scan", "POST", "/api/scan", headers=auth, files={"text": (None, text)})
    scan_id = scan.json()["id"]
    assert len((await call("list scans", "GET", "/api/scans", headers=auth)).json()["items"]) == 1
    await call("get scan", "GET", f"/api/scans/{scan_id}", headers=auth)
    await call("delete scan", "DELETE", f"/api/scans/{scan_id}", headers=auth)

    await call("ready", "GET", "/health/ready")
    await call(
        "logout", "POST", "/api/auth/logout", headers=auth, json={"refresh_token": tokens["refresh_token"]}
    )
    await call("me after logout", "GET", "/api/auth/me", headers=auth)

    again = await call("login again", "POST", "/api/auth/login", data=credentials)
    auth = {"Authorization": f"Bearer {again.json()['access_token']}"}
    # Every deletion takes the transaction-level advisory lock that guards the last admin.
    await call("delete account", "DELETE", f"/api/users/{user_id}", headers=auth)
    await call("login after deletion", "POST", "/api/auth/login", data=credentials)
    return seen


async def test_mixed_traffic_through_pgbouncer_transaction_mode_has_no_errors(
    pgbouncer_url: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        ai_url = stack.enter_context(demo_ai(tmp_path))
        pooled = {"DATABASE_POOLER": "transaction", "AI_SERVICE_URL": ai_url}
        a: ServiceProcess = stack.enter_context(serve(pgbouncer_url, tmp_path, "--workers", "2", **pooled))
        b: ServiceProcess = stack.enter_context(serve(pgbouncer_url, tmp_path, **pooled))

        async with httpx.AsyncClient(timeout=30) as http:
            # Users start on alternate hosts, so both hosts serve every kind of request.
            rotations = [[a.url, b.url], [b.url, a.url]]
            sessions = await asyncio.gather(
                *(_one_user(http, itertools.cycle(rotations[n % 2])) for n in range(USERS))
            )

        assert sessions == [EXPECTED] * USERS
        for host in (a, b):
            assert '"level":"ERROR"' not in host.output()
            assert "prepared statement" not in host.output()
