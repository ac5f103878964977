"""Rate limits per client address: the general one, the sign-in one, memory and Redis stores."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
import redis.asyncio
from litestar import Litestar, post

from service.security.rate_limit import CLOCK_KEY, SIGN_IN_ROUTES, WINDOW_SECONDS, MemoryCounter
from tests.operations.conftest import AppClient
from tests.processes import free_port

LIMITS = {"RATE_LIMIT_PER_MINUTE": "5", "AUTH_RATE_LIMIT_PER_MINUTE": "3"}


class Clock:
    """The limiter's clock in these tests: it stands still until a test moves it, so a test's
    requests all fall into one fixed window however slow the machine is."""

    def __init__(self) -> None:
        # A whole number of windows since the epoch: the start of a window, in the future.
        self.now = float(30_000_000 * WINDOW_SECONDS)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app_client(app_client: AppClient, clock: Clock) -> AppClient:
    """tests/operations' `app_client`, its limiter on `clock`."""

    def open_client(
        prepare: Callable[[Litestar], None] | None = None, **kwargs: str
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        def on_clock(app: Litestar) -> None:
            app.state[CLOCK_KEY] = clock
            if prepare is not None:
                prepare(app)

        return app_client(prepare=on_clock, **kwargs)

    return open_client


SIGN_IN_POSTS = sorted(path for method, path in SIGN_IN_ROUTES if method == "POST")


@post(SIGN_IN_POSTS, status_code=401)
async def refuse_every_sign_in() -> None:
    """Answers like a wrong password on every sign-in path."""


def with_sign_in_routes(app: Litestar) -> None:
    """The sign-in routes belong to the accounts domain; where they are not there, stand in."""
    if not any(route.path in SIGN_IN_POSTS for route in app.routes):
        app.register(refuse_every_sign_in)


def assert_rate_limited(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["ratelimit-remaining"] == "0"


async def exhaust_general_limit(client: httpx.AsyncClient) -> None:
    for _ in range(5):
        response = await client.get("/api/users")
        assert response.status_code == 401
        assert int(response.headers["ratelimit-remaining"]) < 5
    assert_rate_limited(await client.get("/api/v1/audit-events"), "too many requests")


async def exhaust_sign_in_limit(client: httpx.AsyncClient) -> None:
    for path in ("/api/auth/login", "/api/v1/auth/register", "/api/auth/refresh"):
        response = await client.post(path, data={"username": "a@example.com", "password": "wrong"})
        assert response.status_code != 429
        assert response.headers["ratelimit-limit"] == "3"
    assert_rate_limited(
        await client.post("/api/v1/auth/login", data={"username": "a@example.com", "password": "x"}),
        "too many sign-in attempts",
    )


async def test_general_limit_with_memory_store(app_client: AppClient) -> None:
    async with app_client(**LIMITS) as client:
        await exhaust_general_limit(client)
        for path in ("/health", "/health/ready", "/metrics", "/openapi.json", "/docs"):
            assert (await client.get(path)).status_code == 200, path


async def test_sign_in_limit_with_memory_store(app_client: AppClient) -> None:
    async with app_client(prepare=with_sign_in_routes, **LIMITS) as client:
        await exhaust_sign_in_limit(client)
        # The tighter limit is only for sign-in: other routes still answer.
        assert (await client.get("/api/users")).status_code == 401


async def test_limits_are_per_client_address(app_client: AppClient) -> None:
    async with app_client(peer="198.51.100.1", **LIMITS) as first:
        await exhaust_general_limit(first)
    async with app_client(peer="198.51.100.2", **LIMITS) as second:
        assert (await second.get("/api/users")).status_code == 401


async def test_forwarded_for_counts_only_from_a_trusted_proxy(app_client: AppClient) -> None:
    async with app_client(**LIMITS) as direct:
        for number in range(5):
            await direct.get("/api/users", headers={"X-Forwarded-For": f"203.0.113.{number}"})
        blocked = await direct.get("/api/users", headers={"X-Forwarded-For": "203.0.113.99"})
        assert blocked.status_code == 429, "a client cannot escape its limit by inventing addresses"
    async with app_client(TRUSTED_PROXIES="127.0.0.0/8", **LIMITS) as proxied:
        for _ in range(5):
            await proxied.get("/api/users", headers={"X-Forwarded-For": "203.0.113.1"})
        limited = await proxied.get("/api/users", headers={"X-Forwarded-For": "203.0.113.1"})
        assert limited.status_code == 429
        other_client = await proxied.get("/api/users", headers={"X-Forwarded-For": "203.0.113.2"})
        assert other_client.status_code == 401


async def test_both_limits_with_redis_shared_by_two_app_instances(
    redis_url: str, app_client: AppClient, redis_prefix: str
) -> None:
    env = {**LIMITS, "REDIS_URL": redis_url, "REDIS_KEY_PREFIX": redis_prefix}
    async with app_client(prepare=with_sign_in_routes, **env) as worker_one:
        assert (await worker_one.get("/api/users")).status_code == 401
        await exhaust_sign_in_limit(worker_one)
    check = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = sorted([key.decode() async for key in check.scan_iter(match=f"{redis_prefix}:*")])
    finally:
        await check.aclose()
    assert [key.rsplit(":", 1)[0] for key in keys] == [
        f"{redis_prefix}:rate_limit:127.0.0.1",
        f"{redis_prefix}:sign_in_rate_limit:127.0.0.1",
    ], "one counter per limit, address and minute"
    # Another worker (a second app instance) sees the same counts.
    async with app_client(prepare=with_sign_in_routes, **env) as worker_two:
        assert_rate_limited(await worker_two.post("/api/auth/login", data={}), "too many sign-in attempts")
        # One request and three accepted sign-ins so far: the fifth request is the last allowed.
        assert (await worker_two.get("/api/users")).status_code == 401
        assert_rate_limited(await worker_two.get("/api/users"), "too many requests")


async def test_an_unreachable_redis_lets_requests_through_and_says_so(
    app_client: AppClient, capsys: pytest.CaptureFixture[str]
) -> None:
    closed_port = free_port()
    env = {**LIMITS, "REDIS_URL": f"redis://127.0.0.1:{closed_port}/0"}
    async with app_client(**env) as client:
        answers = [(await client.get("/api/users")).status_code for _ in range(8)]
    assert answers == [401] * 8
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    warnings = [entry for entry in logged if entry["logger"] == "service.rate_limit"]
    assert len(warnings) == 1, "one warning per outage, not one per request"
    assert warnings[0]["level"] == "WARNING"
    assert "not rate limited" in warnings[0]["message"]


async def test_memory_counters_of_past_windows_are_swept() -> None:
    counter = MemoryCounter()
    for key in ("rate_limit:198.51.100.7:100", "rate_limit:198.51.100.8:101", "rate_limit:198.51.100.8:101"):
        await counter.hit(key)
    counter.sweep(current_window=101)
    assert counter.counts == {"rate_limit:198.51.100.8:101": 2}


async def test_a_password_change_counts_under_the_sign_in_limit(app_client: AppClient) -> None:
    async with app_client(**LIMITS) as client:
        for _ in range(3):
            answer = await client.patch("/api/auth/me", json={"password": "x", "current_password": "y"})
            assert answer.status_code == 401  # no token: refused after being counted
            assert answer.headers["ratelimit-limit"] == "3"
        assert_rate_limited(
            await client.patch("/api/v1/auth/me", json={"password": "x", "current_password": "y"}),
            "too many sign-in attempts",
        )
        assert (await client.get("/api/auth/me")).status_code == 401, "GET /me is not a sign-in"


async def test_the_budget_comes_back_with_the_next_window(app_client: AppClient, clock: Clock) -> None:
    async with app_client(**LIMITS) as client:
        clock.advance(WINDOW_SECONDS - 15)
        await exhaust_general_limit(client)
        refused = await client.get("/api/users")
        assert refused.headers["retry-after"] == "15", "the seconds left in the window"
        clock.advance(14.5)
        assert (await client.get("/api/users")).status_code == 429, "still the same window"
        clock.advance(0.5)
        again = await client.get("/api/users")
        assert again.status_code == 401
        assert again.headers["ratelimit-remaining"] == "4"
        assert again.headers["ratelimit-reset"] == str(WINDOW_SECONDS)


async def test_the_budget_comes_back_with_the_next_window_in_redis(
    redis_url: str, app_client: AppClient, redis_prefix: str, clock: Clock
) -> None:
    env = {**LIMITS, "REDIS_URL": redis_url, "REDIS_KEY_PREFIX": redis_prefix}
    async with app_client(prepare=with_sign_in_routes, **env) as client:
        await exhaust_sign_in_limit(client)
        clock.advance(WINDOW_SECONDS)
        answer = await client.post("/api/auth/login", data={"username": "a@example.com", "password": "x"})
        assert answer.status_code != 429
        assert answer.headers["ratelimit-remaining"] == "2"
