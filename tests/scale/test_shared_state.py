"""Two hosts, one database and one Redis: what one host decides holds on the other at once.

Hosts A and B are separate `service serve` processes on their own ports, as two replicas behind a
load balancer are; a client that lands on A for one request and on B for the next sees one service.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
import redis

from tests.processes import serve

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "plum orchard at midnight 42"
PROPAGATION_DEADLINE_SECONDS = 1.0


@dataclass
class Hosts:
    a: httpx.Client
    b: httpx.Client


@pytest.fixture(scope="module")
def hosts(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    with ExitStack() as stack:
        a, b = (
            stack.enter_context(serve(database_url, tmp_path_factory.mktemp(name))) for name in ("a", "b")
        )
        yield Hosts(
            stack.enter_context(httpx.Client(base_url=a.url, timeout=10)),
            stack.enter_context(httpx.Client(base_url=b.url, timeout=10)),
        )


def _new_account(host: httpx.Client) -> str:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = host.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201
    return email


def _login(host: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return host.post("/api/auth/login", data={"username": email, "password": password})


def _session(host: httpx.Client, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = _login(host, email, password)
    assert response.status_code == 200
    tokens: dict[str, str] = response.json()
    return tokens


def _refresh(host: httpx.Client, refresh_token: str) -> httpx.Response:
    return host.post("/api/auth/refresh", json={"refresh_token": refresh_token})


def _me(host: httpx.Client, access_token: str) -> httpx.Response:
    return host.get("/api/auth/me", headers={"Authorization": f"Bearer {access_token}"})


def _refused_soon(host: httpx.Client, access_token: str) -> bool:
    """Whether `host` refuses the token within the caller cache's notification latency (about a
    millisecond on loopback; tests/scale/test_caller_cache.py): a deadline, not a measurement."""
    deadline = time.monotonic() + PROPAGATION_DEADLINE_SECONDS
    while _me(host, access_token).status_code != 401:
        if time.monotonic() > deadline:
            return False
    return True


def test_a_refresh_token_replayed_on_another_host_ends_the_session_everywhere(hosts: Hosts) -> None:
    first = _session(hosts.a, _new_account(hosts.a))
    rotated = _refresh(hosts.a, first["refresh_token"])
    assert rotated.status_code == 200
    current = rotated.json()

    replay = _refresh(hosts.b, first["refresh_token"])
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]

    assert _refresh(hosts.b, current["refresh_token"]).status_code == 401
    assert _refresh(hosts.a, current["refresh_token"]).status_code == 401


def test_failed_logins_on_both_hosts_count_towards_one_lockout(hosts: Hosts) -> None:
    email = _new_account(hosts.a)
    attempts = [hosts.a, hosts.b] * 2 + [hosts.a]  # LOGIN_MAX_FAILURES is 5
    assert [_login(host, email, "a wrong guess").status_code for host in attempts] == [401] * 5

    for host in (hosts.b, hosts.a):
        locked = _login(host, email)
        assert locked.status_code == 429, "even the right password waits out the lockout"
        assert int(locked.headers["retry-after"]) > 0


def test_logout_on_one_host_is_refused_by_the_other(hosts: Hosts) -> None:
    session = _session(hosts.a, _new_account(hosts.a))
    assert _me(hosts.b, session["access_token"]).status_code == 200

    logout = hosts.a.post(
        "/api/auth/logout",
        headers={"Authorization": f"Bearer {session['access_token']}"},
        json={"refresh_token": session["refresh_token"]},
    )
    assert logout.status_code == 204

    assert _me(hosts.a, session["access_token"]).status_code == 401, "at once on the host that did it"
    assert _refused_soon(hosts.b, session["access_token"])
    assert _refresh(hosts.b, session["refresh_token"]).status_code == 401


def test_a_password_change_on_one_host_ends_the_other_sessions_on_the_other(hosts: Hosts) -> None:
    email = _new_account(hosts.a)
    here = _session(hosts.a, email)
    elsewhere = _session(hosts.b, email)
    assert _me(hosts.b, elsewhere["access_token"]).status_code == 200

    change = hosts.a.patch(
        "/api/auth/me",
        headers={"Authorization": f"Bearer {here['access_token']}"},
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
    )
    assert change.status_code == 200

    assert _refused_soon(hosts.b, elsewhere["access_token"])
    assert _refresh(hosts.b, elsewhere["refresh_token"]).status_code == 401
    continued = _refresh(hosts.b, here["refresh_token"])
    assert continued.status_code == 200, "the session that changed the password goes on, on any host"
    assert _me(hosts.a, continued.json()["access_token"]).status_code == 200
    assert _login(hosts.b, email, PASSWORD).status_code == 401
    assert _login(hosts.b, email, NEW_PASSWORD).status_code == 200


def test_the_rate_limit_is_one_budget_across_hosts(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    limited = {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix, "RATE_LIMIT_PER_MINUTE": "6"}
    try:
        with ExitStack() as stack:
            a, b = (
                stack.enter_context(serve(database_url, tmp_path_factory.mktemp(name), **limited))
                for name in ("limited-a", "limited-b")
            )
            answers = [httpx.get(f"{host.url}/api/users", timeout=10).status_code for host in [a, b] * 4]
        assert answers == [401] * 6 + [429] * 2, "six requests in all, wherever they landed"
    finally:
        store = redis.Redis.from_url(redis_url)
        keys = list(store.scan_iter(match=f"{prefix}:*"))
        if keys:
            store.delete(*keys)
        store.close()
