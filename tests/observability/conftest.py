"""Traces recorded in memory by the SDK, or received over OTLP/HTTP on loopback, and a real Prometheus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

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
