"""CORS as a browser meets it: the dev servers' origins in both spellings during development,
and request headers an operator adds for tracing."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import app_for, make_settings, running

TRACING_HEADERS = "sentry-trace, baggage, traceparent"
ClientWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def preflight(origin: str, request_headers: str = "authorization, content-type") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": request_headers,
    }


@pytest.fixture
def client_with(database_url: str, tmp_path: Path, db: asyncpg.Connection) -> ClientWith:
    @asynccontextmanager
    async def connect(**environment: str) -> AsyncIterator[httpx.AsyncClient]:
        async with running(app_for(make_settings(database_url, tmp_path, **environment))) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http

    return connect


async def test_development_allows_the_dev_servers_as_localhost_and_as_127_0_0_1(
    client_with: ClientWith,
) -> None:
    async with client_with(ENVIRONMENT="development") as client:
        for port in (3000, 5173, 8080):
            for host in ("localhost", "127.0.0.1"):
                origin = f"http://{host}:{port}"
                answer = await client.options("/api/scan", headers=preflight(origin))
                assert answer.status_code in (200, 204), origin
                assert answer.headers["access-control-allow-origin"] == origin
    async with client_with(ENVIRONMENT="test") as client:
        other_environment = await client.options("/api/scan", headers=preflight("http://127.0.0.1:5173"))
        assert other_environment.status_code == 400


async def test_tracing_headers_are_refused_unless_the_operator_allows_them(client_with: ClientWith) -> None:
    request_headers = f"authorization, content-type, x-request-id, {TRACING_HEADERS}"
    async with client_with() as client:
        refused = await client.options(
            "/api/scan", headers=preflight("http://localhost:5173", request_headers)
        )
        assert refused.status_code == 400
    async with client_with(CORS_ALLOW_HEADERS=TRACING_HEADERS) as client:
        allowed = await client.options(
            "/api/scan", headers=preflight("http://localhost:5173", request_headers)
        )
        assert allowed.status_code in (200, 204)
        granted = {
            name.strip().lower() for name in allowed.headers["access-control-allow-headers"].split(",")
        }
        # Added to the headers every frontend needs, not instead of them.
        assert {
            "authorization",
            "content-type",
            "x-request-id",
            "sentry-trace",
            "baggage",
            "traceparent",
        } <= granted
