"""The shape of the spans, recorded in memory by the SDK: a server span per request named by its
route, a child per SQL statement named by its file, client spans that carry the context on."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import FrameType

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from service.settings import Settings
from tests.conftest import bearer, make_settings, make_user
from tests.observability.conftest import TracedClient, access_lines, by_name, request_fetching_keys
from tests.scans.conftest import FaultyAi

CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"
TEXT = {"text": (None, "Project has tight budget and aggressive deadline")}


async def test_a_request_continues_the_callers_trace_with_a_span_per_statement(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    user = await make_user(db)
    headers = {
        **bearer(make_settings(database_url, tmp_path), user),
        "traceparent": TRACEPARENT,
        "tracestate": "vendor=opaque",
        "X-Request-ID": "report-1234",
    }
    async with traced_client() as client:
        response = await client.get(f"/api/{user}/tasks?q=secret-filter", headers=headers)
    assert response.status_code == 200

    named = by_name(spans.get_finished_spans())
    [server] = named["GET /api/{user_id}/tasks"]
    assert server.kind is SpanKind.SERVER
    assert format_trace_id(server.context.trace_id) == CALLER_TRACE_ID
    assert server.parent is not None
    assert format_span_id(server.parent.span_id) == CALLER_SPAN_ID
    assert server.context.trace_state.to_header() == "vendor=opaque"
    assert server.attributes is not None
    assert server.attributes["request.id"] == "report-1234"
    assert server.attributes["http.route"] == "/api/{user_id}/tasks"
    assert server.attributes["http.status_code"] == 200

    statements = [span for span in spans.get_finished_spans() if span.kind is SpanKind.CLIENT]
    assert {"accounts/get_caller", "tasks/list_tasks"} <= {span.name for span in statements}
    for span in statements:
        assert span.parent is not None
        assert span.parent.span_id == server.context.span_id
        assert span.attributes is not None
        assert span.attributes["db.system.name"] == "postgresql"
        assert str(user) not in json.dumps(dict(span.attributes)), f"{span.name} recorded a parameter value"
    for span in spans.get_finished_spans():
        assert "secret-filter" not in json.dumps(dict(span.attributes or {})), "a query string was recorded"


async def test_unmatched_paths_are_named_by_method_only_and_probes_are_not_traced(
    traced_client: TracedClient, spans: InMemorySpanExporter
) -> None:
    async with traced_client() as client:
        assert (await client.get("/api/no/such/thing-42")).status_code == 404
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    assert [span.name for span in spans.get_finished_spans()] == ["GET"]


async def test_the_ai_service_call_is_a_client_span_that_propagates_the_trace(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    faulty_ai: FaultyAi,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    user = await make_user(db)
    headers = {**bearer(make_settings(database_url, tmp_path), user), "traceparent": TRACEPARENT}
    async with traced_client(AI_SERVICE_URL=f"{faulty_ai.url}/ok") as client:
        assert (await client.post("/api/scan", headers=headers, files=TEXT)).status_code == 201

    [call] = by_name(spans.get_finished_spans())["POST ai-service"]
    assert call.kind is SpanKind.CLIENT
    assert format_trace_id(call.context.trace_id) == CALLER_TRACE_ID
    [seen] = faulty_ai.seen
    trace_id, parent_span = seen.headers["traceparent"].split("-")[1:3]
    assert trace_id == CALLER_TRACE_ID
    assert parent_span == format_span_id(call.context.span_id), "the AI service's parent is our client span"
    assert "scans/insert_scan" in by_name(spans.get_finished_spans())


async def test_the_jwks_fetch_is_a_client_span_of_the_request_that_needed_it(
    traced_client: TracedClient, spans: InMemorySpanExporter
) -> None:
    response, _provider = await request_fetching_keys(traced_client, spans, {})
    assert response.status_code == 200
    named = by_name(spans.get_finished_spans())
    [server] = named["GET /api/auth/me"]
    [fetch] = named["GET identity-provider"]
    assert fetch.kind is SpanKind.CLIENT
    assert fetch.parent is not None
    assert fetch.parent.span_id == server.context.span_id
    assert fetch.attributes is not None
    assert fetch.attributes["peer.service"] == "identity-provider"


async def test_a_5xx_answer_and_its_access_line_name_the_trace(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    faulty_ai: FaultyAi,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = await make_user(db)
    headers = bearer(make_settings(database_url, tmp_path), user)
    async with traced_client(AI_SERVICE_URL=f"{faulty_ai.url}/crash", LOG_LEVEL="INFO") as client:
        failed = await client.post("/api/scan", headers=headers, files=TEXT)
        refused = await client.get(f"/api/{user}/tasks", headers={"Authorization": "Bearer nonsense"})
    assert failed.status_code == 502
    [server] = by_name(spans.get_finished_spans())["POST /api/scan"]
    trace_id = format_trace_id(server.context.trace_id)
    assert failed.json()["trace_id"] == trace_id
    assert refused.status_code == 401
    assert "trace_id" not in refused.json(), "only server errors carry the trace id"
    access = access_lines(capsys.readouterr().err)
    assert [(entry["status"], len(entry["trace_id"])) for entry in access] == [(502, 32), (401, 32)]
    assert access[0]["trace_id"] == trace_id


async def test_without_an_endpoint_no_opentelemetry_code_runs_on_the_request_path(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
) -> None:
    """Litestar and redis-py import OpenTelemetry when it is installed; none of it may run."""
    user = await make_user(db)
    called: set[str] = set()

    def record(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and "opentelemetry" in frame.f_code.co_filename:
            called.add(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    sys.setprofile(record)
    try:
        listed = await client.get(
            f"/api/{user}/tasks", headers={**bearer(settings, user), "traceparent": TRACEPARENT}
        )
        missing = await client.get("/api/no/such/thing")
    finally:
        sys.setprofile(None)
    assert (listed.status_code, missing.status_code) == (200, 404)
    assert "trace_id" not in listed.text
    assert called == set()


async def test_a_browser_may_send_the_trace_context_cross_origin(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/api/auth/me",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, traceparent, tracestate",
        },
    )
    assert preflight.status_code in (200, 204)
    allowed = {name.strip().lower() for name in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"traceparent", "tracestate"} <= allowed
