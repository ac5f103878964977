"""/metrics after real traffic: route templates, status labels, pool gauges, the shared counters."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import bearer, make_settings, make_user
from tests.operations.conftest import AppClient
from tests.processes import serve

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return parse(response.text)


async def test_requests_are_counted_by_route_template_method_and_status(
    app_client: AppClient, db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path)
    user = await make_user(db)
    headers = bearer(settings, user)
    async with app_client() as client:
        before = await scrape(client)
        for _ in range(3):
            assert (await client.get(f"/api/users/{user}", headers=headers)).status_code == 200
        assert (await client.get(f"/api/v1/users/{uuid.uuid4()}", headers=headers)).status_code == 403
        assert (await client.get(f"/api/no/such/{uuid.uuid4()}")).status_code == 404
        assert (await client.request("BREW", "/api/users")).status_code in (400, 405)
        text = (await client.get("/metrics")).text
    after = parse(text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    user_route = {"route": "/api/users/{user_id}", "method": "GET"}
    assert delta("http_requests_total", status="200", **user_route) == 3
    assert delta("http_requests_total", route="/api/v1/users/{user_id}", method="GET", status="403") == 1
    assert delta("http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("http_request_duration_seconds_count", **user_route) == 3
    assert delta("http_request_duration_seconds_bucket", le="+Inf", **user_route) == 3
    assert str(user) not in text, "ids never become label values"
    assert "/api/no/such" not in text
    assert "BREW" not in text


async def test_pool_gauges_and_the_domain_series_are_there_from_the_start(
    app_client: AppClient,
) -> None:
    async with app_client(DATABASE_POOL_MIN="2", DATABASE_POOL_MAX="4") as client:
        # The pool opens its floor in the background after start-up (a worker starts while the
        # database is down), within moments when the database answers.
        deadline = time.monotonic() + 10
        samples = await scrape(client)
        while value(samples, "db_pool_connections") < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            samples = await scrape(client)
    assert value(samples, "db_pool_connections_max") == 4
    assert value(samples, "db_pool_connections") >= 2
    assert value(samples, "db_pool_connections_in_use") == 0
    for outcome in ("success", "timeout", "unavailable", "bad_response"):
        assert ("ai_service_calls_total", frozenset({("outcome", outcome)})) in samples
        assert ("ai_service_call_seconds_count", frozenset({("outcome", outcome)})) in samples
    for outcome in ("success", "failure", "locked_out"):
        assert ("login_attempts_total", frozenset({("outcome", outcome)})) in samples


async def test_logins_and_ai_calls_are_counted_by_outcome(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    credentials = {"email": "metrics@example.com", "password": "a-long-enough-pass-91"}
    assert (await client.post("/api/auth/register", json=credentials)).status_code == 201
    good = {"username": credentials["email"], "password": credentials["password"]}
    login = await client.post("/api/auth/login", data=good)
    assert login.status_code == 200
    wrong = {"username": credentials["email"], "password": "not-the-password-1"}
    assert (await client.post("/api/auth/login", data=wrong)).status_code == 401
    token = login.json()["access_token"]
    # The test settings point AI_SERVICE_URL at a closed port: the call is "unavailable".
    scan = await client.post(
        "/api/scan", files={"text": (None, "a tight budget")}, headers={"Authorization": f"Bearer {token}"}
    )
    assert scan.status_code == 503
    after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("login_attempts_total", outcome="success") == 1
    assert grew("login_attempts_total", outcome="failure") == 1
    assert grew("ai_service_calls_total", outcome="unavailable") == 1
    assert grew("ai_service_call_seconds_count", outcome="unavailable") == 1


async def test_a_metrics_token_is_required_when_set(app_client: AppClient) -> None:
    token = "scrape-" + "s" * 30
    async with app_client(METRICS_TOKEN=token) as client:
        missing = await client.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-it"})
        assert wrong.status_code == 401
        await scrape(client, Authorization=f"Bearer {token}")


async def test_metrics_can_be_turned_off(app_client: AppClient) -> None:
    async with app_client(METRICS_ENABLED="false") as client:
        assert (await client.get("/metrics")).status_code == 404
        assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]


def test_several_workers_report_together(database_url: str, tmp_path: Path) -> None:
    pool_limits = {"DATABASE_POOL_MIN": "1", "DATABASE_POOL_MAX": "3"}
    with serve(database_url, tmp_path, "--workers", "2", **pool_limits) as server:
        with httpx.Client(base_url=server.url) as http:
            for _ in range(10):
                assert http.get("/health").status_code == 200
            # Each worker's pool allows 3; once both workers have started, any scrape covers both.
            deadline = time.monotonic() + 30
            while value(samples := parse(http.get("/metrics").text), "db_pool_connections_max") < 6:
                assert time.monotonic() < deadline, "the second worker did not start"
                time.sleep(0.1)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
    assert value(samples, "db_pool_connections_max") == 6
    assert value(samples, "http_requests_total", route="/health", method="GET", status="200") >= 10
    assert not list((tmp_path / "prometheus").glob("*/*")), "the samples directory is removed on exit"
