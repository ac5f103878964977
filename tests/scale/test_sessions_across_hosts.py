"""Ending a session on one host stops it on the other: two `service serve` processes, one database.

The refresh token stops at once (every refresh reads the database). The access token stops
within the other host's notification latency, usually before the 204 arrives, and at the
latest within the caller cache's trust window (docs/auth.md, "The caller cache"): a busy
machine can delay the other worker's NOTIFY by some milliseconds, so the test allows that bound.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import psycopg
import pytest

from tests.processes import serve

PASSWORD = "correct horse battery staple"
# The caller cache's trust window (TRUST_SECONDS in service/security/caller_listener.py).
TRUST_WINDOW_SECONDS = 2.0


@pytest.fixture(scope="module")
def hosts(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with ExitStack() as stack:
        a, b = (
            stack.enter_context(serve(database_url, tmp_path_factory.mktemp(name))) for name in ("a", "b")
        )
        yield (
            stack.enter_context(httpx.Client(base_url=a.url, timeout=10)),
            stack.enter_context(httpx.Client(base_url=b.url, timeout=10)),
        )


def _account(host: httpx.Client) -> str:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    assert host.post("/api/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    return email


def _session(host: httpx.Client, email: str) -> dict[str, str]:
    response = host.post("/api/auth/login", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200
    tokens: dict[str, str] = response.json()
    return tokens


def _auth(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _works(host: httpx.Client, tokens: dict[str, str]) -> tuple[int, int]:
    """(status of /me with the access token, status of a refresh with the refresh token), the
    access token asked again until it is refused or the trust window has passed."""
    refreshed = host.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code
    deadline = time.monotonic() + TRUST_WINDOW_SECONDS
    me = host.get("/api/auth/me", headers=_auth(tokens)).status_code
    while me == 200 and time.monotonic() < deadline:
        time.sleep(0.005)
        me = host.get("/api/auth/me", headers=_auth(tokens)).status_code
    return me, refreshed


def test_a_session_ended_on_one_host_stops_on_the_other(
    hosts: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = hosts
    email = _account(a)
    laptop = _session(a, email)
    assert a.get("/api/auth/me", headers=_auth(laptop)).status_code == 200, "verified (and cached) on host A"
    phone = _session(b, email)
    laptop_id = next(
        s["id"] for s in b.get("/api/auth/sessions", headers=_auth(phone)).json() if not s["current"]
    )

    assert b.delete(f"/api/auth/sessions/{laptop_id}", headers=_auth(phone)).status_code == 204
    assert _works(a, laptop) == (401, 401)
    assert a.get("/api/auth/me", headers=_auth(phone)).status_code == 200


def test_an_admin_ending_every_session_on_one_host_stops_them_on_the_other(
    hosts: tuple[httpx.Client, httpx.Client], database_url: str
) -> None:
    a, b = hosts
    admin_email, email = _account(a), _account(a)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE users SET role = 'admin' WHERE email = %s", (admin_email,))
        user_id = connection.execute("SELECT id FROM users WHERE email = %s", (email,)).fetchone()[0]
    sessions = [_session(a, email) for _ in range(2)]
    admin = _session(b, admin_email)

    assert b.delete(f"/api/users/{user_id}/sessions", headers=_auth(admin)).status_code == 204
    for tokens in sessions:
        assert _works(a, tokens) == (401, 401)
