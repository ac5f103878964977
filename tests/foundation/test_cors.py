"""CORS as a browser meets it: the dev servers' origins in both spellings, and request headers an
operator adds for tracing."""

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.app import create_app
from tests.conftest import make_settings, running

TRACING_HEADERS = "sentry-trace, baggage, traceparent"


def preflight_headers(origin: str, request_headers: str = "authorization, content-type") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": request_headers,
    }


@pytest.fixture
async def traced_client(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, tmp_path, CORS_ALLOW_HEADERS="sentry-trace,baggage,traceparent")
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_the_dev_servers_are_allowed_as_localhost_and_as_127_0_0_1(client: httpx.AsyncClient) -> None:
    for port in (3000, 5173, 8080):
        for host in ("localhost", "127.0.0.1"):
            origin = f"http://{host}:{port}"
            answer = await client.options("/api/scan", headers=preflight_headers(origin))
            assert answer.status_code in (200, 204), origin
            assert answer.headers["access-control-allow-origin"] == origin


async def test_tracing_headers_are_refused_unless_the_operator_allows_them(
    client: httpx.AsyncClient, traced_client: httpx.AsyncClient
) -> None:
    request_headers = f"authorization, content-type, {TRACING_HEADERS}"
    refused = await client.options(
        "/api/scan", headers=preflight_headers("http://localhost:5173", request_headers)
    )
    assert refused.status_code == 400
    allowed = await traced_client.options(
        "/api/scan", headers=preflight_headers("http://localhost:5173", request_headers)
    )
    assert allowed.status_code in (200, 204)
    granted = {name.strip().lower() for name in allowed.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "sentry-trace", "baggage", "traceparent"} <= granted
