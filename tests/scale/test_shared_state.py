"""Two hosts, one database and one Redis: what one host decides holds on the other at once.

Hosts A and B are separate `service serve` processes on their own ports, as two replicas behind a
load balancer are; a client that lands on A for one request and on B for the next sees one service.
The shared limits (login lockout, rate limit) are tested with bursts spread over both hosts: one
request at a time cannot tell an atomic shared count from a read-then-write one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass

import httpx
import pytest
import redis

from tests.processes import serve

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "plum orchard at midnight 42"
PROPAGATION_DEADLINE_SECONDS = 1.0
WRONG_PASSWORD = "a wrong guess"
LOGIN_MAX_FAILURES = 5  # the setting's default, which the hosts run with
LOCKOUT_SECONDS = 15 * 60  # LOGIN_LOCKOUT_MINUTES's default
RATE_LIMIT = 6
RATE_LIMIT_WINDOW_SECONDS = 60  # service.security.rate_limit.WINDOW_SECONDS
# A burst must fit in one fixed window: it starts only with at least this long left in it.
WINDOW_MARGIN_SECONDS = 10.0


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


@pytest.fixture
async def burst_clients(hosts: Hosts) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Asynchronous clients of hosts A and B, for requests sent at once."""
    async with (
        httpx.AsyncClient(base_url=hosts.a.base_url, timeout=30) as a,
        httpx.AsyncClient(base_url=hosts.b.base_url, timeout=30) as b,
    ):
        yield [a, b]


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


async def test_failed_logins_on_both_hosts_count_towards_one_lockout(
    hosts: Hosts, burst_clients: list[httpx.AsyncClient]
) -> None:
    email = _new_account(hosts.a)
    burst = 30
    answers = await asyncio.gather(
        *(
            burst_clients[i % 2].post("/api/auth/login", data={"username": email, "password": WRONG_PASSWORD})
            for i in range(burst)
        )
    )
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {401: LOGIN_MAX_FAILURES, 429: burst - LOGIN_MAX_FAILURES}, (
        "only LOGIN_MAX_FAILURES passwords are checked, whichever host each guess reached"
    )
    for answer in answers:
        if answer.status_code == 429:
            assert 0 < int(answer.headers["retry-after"]) <= LOCKOUT_SECONDS

    for host in (hosts.b, hosts.a):
        locked = _login(host, email)
        assert locked.status_code == 429, "even the right password waits out the lockout"
        assert 0 < int(locked.headers["retry-after"]) <= LOCKOUT_SECONDS


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


async def test_the_rate_limit_is_one_budget_across_hosts(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    limited = {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix, "RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT)}
    burst = 40
    try:
        async with AsyncExitStack() as stack:
            a, b = (
                stack.enter_context(
                    serve(database_url, tmp_path_factory.mktemp(name), "--workers", "2", **limited)
                )
                for name in ("limited-a", "limited-b")
            )
            clients = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=host.url, timeout=30))
                for host in (a, b)
            ]
            # The limit counts per fixed window, int(now // 60) (service/security/rate_limit.py): a
            # burst across a window's end would be counted in two windows and get twice the budget.
            # Start it only with WINDOW_MARGIN_SECONDS or more left in the current window.
            left = RATE_LIMIT_WINDOW_SECONDS - time.time() % RATE_LIMIT_WINDOW_SECONDS
            if left < WINDOW_MARGIN_SECONDS:
                await asyncio.sleep(left + 0.1)
            window = int(time.time() // RATE_LIMIT_WINDOW_SECONDS)
            answers = await asyncio.gather(*(clients[i % 2].get("/api/users") for i in range(burst)))
            assert int(time.time() // RATE_LIMIT_WINDOW_SECONDS) == window, "the burst fit in one window"
    finally:
        store = redis.Redis.from_url(redis_url)
        keys = list(store.scan_iter(match=f"{prefix}:*"))
        if keys:
            store.delete(*keys)
        store.close()
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {401: RATE_LIMIT, 429: burst - RATE_LIMIT}, "six requests in all, wherever they landed"
    admitted = [answer for answer in answers if answer.status_code != 429]
    # Each admitted request was counted on its own in the shared counter: 5, 4, ... 0 left.
    remaining = sorted(int(answer.headers["ratelimit-remaining"]) for answer in admitted)
    assert remaining == list(range(RATE_LIMIT))
    for answer in answers:
        assert answer.headers["ratelimit-limit"] == str(RATE_LIMIT)
        assert answer.headers["ratelimit-policy"] == f"{RATE_LIMIT};w={RATE_LIMIT_WINDOW_SECONDS}"
        assert 0 < int(answer.headers["ratelimit-reset"]) <= RATE_LIMIT_WINDOW_SECONDS
        if answer.status_code == 429:
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["detail"] == "too many requests from this address"
            assert answer.headers["ratelimit-remaining"] == "0"
            assert 0 < int(answer.headers["retry-after"]) <= RATE_LIMIT_WINDOW_SECONDS
