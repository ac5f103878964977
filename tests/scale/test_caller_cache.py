"""The caller cache across processes: a change made through one host reaches every worker of the
other within the notification latency, directly and behind PgBouncer in transaction mode.

Host A is one `service serve`, host B another with `--workers 2`, on one database. Each probe of
B is a new connection, so the kernel spreads them over B's workers; a change counts as seen only
once several probes in a row agree.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from tests.processes import ServiceProcess, serve

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "plum orchard at midnight 42"
# Loopback notifications take about a millisecond (bench/README.md); this is a deadline on a
# machine shared with other work, not the measurement.
PROPAGATION_DEADLINE_SECONDS = 1.0
AGREEING_PROBES = 6


@dataclass
class Fleet:
    a: ServiceProcess
    b: ServiceProcess
    database_url: str


@pytest.fixture(scope="module")
def fleet(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with ExitStack() as stack:
        a = stack.enter_context(serve(database_url, tmp_path_factory.mktemp("cache-a")))
        b = stack.enter_context(serve(database_url, tmp_path_factory.mktemp("cache-b"), "--workers", "2"))
        yield Fleet(a, b, database_url)


def _metric(server: ServiceProcess, line_start: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {line_start} in /metrics")


def _account(server: ServiceProcess, *, admin: bool = False, database_url: str = "") -> tuple[str, str]:
    """(email, access token) of a new local account; `admin` promotes it in SQL first."""
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    registered = httpx.post(f"{server.url}/api/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    if admin:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute("UPDATE users SET role = 'admin' WHERE email = %s", (email,))
    return email, _login(server, email)


def _login(server: ServiceProcess, email: str, password: str = PASSWORD) -> str:
    response = httpx.post(f"{server.url}/api/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _user_id(server: ServiceProcess, token: str) -> str:
    user_id: str = httpx.get(f"{server.url}/api/auth/me", headers=_auth(token)).json()["id"]
    return user_id


def _status(server: ServiceProcess, path: str, token: str) -> int:
    return httpx.get(f"{server.url}{path}", headers=_auth(token), timeout=10).status_code


def _warm(server: ServiceProcess, path: str, token: str) -> None:
    """Put the caller in every worker's cache (probes land on either worker)."""
    for _ in range(AGREEING_PROBES):
        assert _status(server, path, token) == 200


def _first_seen(
    change: Callable[[], None], server: ServiceProcess, path: str, token: str, expected: int
) -> None:
    """Make the change, poll `server` until it answers `expected` (within the deadline), then
    check that AGREEING_PROBES more probes, spread over its workers, agree."""
    change()
    started = time.monotonic()
    while _status(server, path, token) != expected:
        assert time.monotonic() - started < PROPAGATION_DEADLINE_SECONDS, "the change did not reach the host"
    assert [_status(server, path, token) for _ in range(AGREEING_PROBES)] == [expected] * AGREEING_PROBES


def test_every_worker_listens_and_serves_warm_callers_from_memory(fleet: Fleet) -> None:
    assert _metric(fleet.a, "caller_cache_trusted") == 1
    deadline = time.monotonic() + 30  # B answers once its first worker is up; the second follows
    while _metric(fleet.b, "caller_cache_trusted") != 2:
        assert time.monotonic() < deadline, "B's two workers are not both listening"
        time.sleep(0.1)
    _, token = _account(fleet.a)
    path = f"/api/{_user_id(fleet.a, token)}/tasks"
    _warm(fleet.b, path, token)
    deadline = time.monotonic() + 10  # a worker publishes its counts at most once a second
    while _metric(fleet.b, 'caller_cache_lookups_total{outcome="hit"}') == 0:
        assert time.monotonic() < deadline, "no request was served from the cache"
        _warm(fleet.b, path, token)
        time.sleep(0.2)


def test_a_logout_on_one_host_is_refused_by_every_worker_of_the_other(fleet: Fleet) -> None:
    _, token = _account(fleet.a)
    path = f"/api/{_user_id(fleet.a, token)}/tasks"
    _warm(fleet.b, path, token)

    def logout() -> None:
        assert httpx.post(f"{fleet.a.url}/api/auth/logout", headers=_auth(token)).status_code == 204

    _first_seen(logout, fleet.b, path, token, 401)
    assert _status(fleet.a, path, token) == 401


def test_a_password_change_on_one_host_ends_the_old_tokens_on_the_other(fleet: Fleet) -> None:
    email, token = _account(fleet.b)
    path = f"/api/{_user_id(fleet.b, token)}/tasks"
    _warm(fleet.a, path, token)

    def change_password() -> None:
        response = httpx.patch(
            f"{fleet.b.url}/api/auth/me",
            headers=_auth(token),
            json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        )
        assert response.status_code == 200, response.text

    _first_seen(change_password, fleet.a, path, token, 401)
    assert _status(fleet.a, path, _login(fleet.a, email, NEW_PASSWORD)) == 200


@pytest.mark.parametrize(
    ("change", "expected"),
    [({"is_active": False}, 401), ({"role": "user"}, 403)],
    ids=["deactivate", "demote"],
)
def test_an_administrators_change_on_one_host_reaches_every_worker_of_the_other(
    fleet: Fleet, change: dict[str, object], expected: int
) -> None:
    _, admin = _account(fleet.a, admin=True, database_url=fleet.database_url)
    _, target = _account(fleet.a, admin=True, database_url=fleet.database_url)
    target_id = _user_id(fleet.a, target)
    _warm(fleet.b, "/api/users", target)

    def administer() -> None:
        response = httpx.patch(f"{fleet.a.url}/api/users/{target_id}", headers=_auth(admin), json=change)
        assert response.status_code == 200, response.text

    # Demotion ends the sessions too: an old token is refused (401) or, were it kept, 403.
    def refused(status: int) -> bool:
        return status in (401, expected)

    administer()
    started = time.monotonic()
    while not refused(_status(fleet.b, "/api/users", target)):
        assert time.monotonic() - started < PROPAGATION_DEADLINE_SECONDS, "the change did not reach B"
    assert all(refused(_status(fleet.b, "/api/users", target)) for _ in range(AGREEING_PROBES))


def test_a_deletion_on_one_host_is_refused_by_every_worker_of_the_other(fleet: Fleet) -> None:
    _, token = _account(fleet.a)
    user_id = _user_id(fleet.a, token)
    path = f"/api/{user_id}/tasks"
    _warm(fleet.b, path, token)

    def delete() -> None:
        assert httpx.delete(f"{fleet.a.url}/api/users/{user_id}", headers=_auth(token)).status_code == 204

    _first_seen(delete, fleet.b, path, token, 401)


def test_behind_a_transaction_pooler_without_a_listen_url_the_cache_is_off(
    pgbouncer_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pooled = {"DATABASE_POOLER": "transaction"}
    with ExitStack() as stack:
        a = stack.enter_context(serve(pgbouncer_url, tmp_path_factory.mktemp("pooled-a"), **pooled))
        b = stack.enter_context(serve(pgbouncer_url, tmp_path_factory.mktemp("pooled-b"), **pooled))
        assert _metric(b, "caller_cache_trusted") == 0
        _, token = _account(a)
        path = f"/api/{_user_id(a, token)}/tasks"
        _warm(b, path, token)
        assert httpx.post(f"{a.url}/api/auth/logout", headers=_auth(token)).status_code == 204
        assert _status(b, path, token) == 401, "read from the database on the very next request"
    assert b.output().count("caller cache off: DATABASE_POOLER=transaction and no DATABASE_LISTEN_URL") == 1


def test_behind_a_transaction_pooler_with_a_listen_url_the_cache_is_on(
    pgbouncer_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pooled = {"DATABASE_POOLER": "transaction", "DATABASE_LISTEN_URL": database_url}
    with ExitStack() as stack:
        a = stack.enter_context(serve(pgbouncer_url, tmp_path_factory.mktemp("listen-a"), **pooled))
        b = stack.enter_context(serve(pgbouncer_url, tmp_path_factory.mktemp("listen-b"), **pooled))
        assert _metric(b, "caller_cache_trusted") == 1
        _, token = _account(a)
        path = f"/api/{_user_id(a, token)}/tasks"
        _warm(b, path, token)

        def logout() -> None:
            assert httpx.post(f"{a.url}/api/auth/logout", headers=_auth(token)).status_code == 204

        _first_seen(logout, b, path, token, 401)
