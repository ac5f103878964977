"""Traces recorded in memory by the SDK, or received over OTLP/HTTP on loopback, and a real Prometheus."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.app import create_app
from service.observability.tracing import create_tracer_provider
from service.security.providers import KEY_CHECK_STATE_KEY
from tests.conftest import make_settings, running
from tests.processes import http_server_in_thread
from tests.providers.conftest import SigningKey, new_key, supabase_claims
from tests.scans.conftest import faulty_ai, faulty_ai_server  # noqa: F401 - fixtures used here too

TracedClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced_client(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, spans: InMemorySpanExporter
) -> TracedClient:
    """`async with traced_client(**env) as client:` an app whose spans land in `spans`."""

    @asynccontextmanager
    async def open_client(**env: str) -> AsyncIterator[httpx.AsyncClient]:
        settings = make_settings(database_url, tmp_path, **env)
        provider = create_tracer_provider(settings, SimpleSpanProcessor(spans))
        app = create_app(settings, tracer_provider=provider)
        async with running(app):
            await app.state[KEY_CHECK_STATE_KEY]  # its JWKS fetches belong to no request
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client
        provider.shutdown()

    return open_client


def by_name(finished: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in finished:
        named.setdefault(span.name, []).append(span)
    return named


def access_lines(err: str) -> list[dict[str, Any]]:
    """The access log's JSON lines in what the app wrote to stderr."""
    return [
        json.loads(line) for line in err.splitlines() if line.startswith("{") and '"service.access"' in line
    ]


class RecordingJwks:
    """A JWKS endpoint on loopback that records the headers of every request it gets."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.seen: list[dict[str, str]] = []
        self.url = ""

    def publish(self, *keys: SigningKey) -> None:
        self.keys = [key.public_jwk for key in keys]


@contextmanager
def recording(jwks: RecordingJwks) -> Iterator[RecordingJwks]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            jwks.seen.append({name.lower(): value for name, value in self.headers.items()})
            body = json.dumps({"keys": jwks.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_server_in_thread(Handler) as server:
        jwks.url = f"http://127.0.0.1:{server.server_port}"
        yield jwks


async def request_fetching_keys(
    traced_client: TracedClient, spans: InMemorySpanExporter, headers: dict[str, str]
) -> tuple[httpx.Response, RecordingJwks]:
    """GET /api/auth/me (with `headers`) signed by a key the identity provider publishes only
    after start-up, so the request itself fetches the JWKS. What the start-up check fetched, and
    its spans, are cleared: the provider's `seen` and `spans` hold the request's alone."""
    known, minted = new_key("ES256"), new_key("ES256")
    provider = RecordingJwks()
    provider.publish(known)
    with recording(provider):
        async with traced_client(SUPABASE_URL=provider.url) as client:
            provider.seen.clear()
            spans.clear()
            provider.publish(known, minted)
            token = minted.sign(supabase_claims(provider.url))
            response = await client.get(
                "/api/auth/me", headers={"Authorization": f"Bearer {token}", **headers}
            )
    return response, provider
