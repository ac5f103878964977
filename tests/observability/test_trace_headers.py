"""Issue 23: with tracing on, what our dependencies receive is our own trace context alone. A
client's `baggage` and `tracestate` reach neither the AI service nor an identity provider; the
`traceparent` they get names our client span, in the client's trace."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id

from tests.conftest import bearer, make_settings, make_user
from tests.observability.conftest import TracedClient, by_name, request_fetching_keys
from tests.scans.conftest import FaultyAi

CALLER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_HEADERS = {
    "traceparent": f"00-{CALLER_TRACE_ID}-b7ad6b7169203331-01",
    "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    "baggage": "userId=alice,isProduction=false,secret=from-the-client",
}


def _only_our_traceparent(headers: dict[str, str], span_id: int) -> None:
    assert "baggage" not in headers, headers
    assert "tracestate" not in headers, headers
    version, trace_id, parent, _flags = headers["traceparent"].split("-")
    assert (version, trace_id, parent) == ("00", CALLER_TRACE_ID, format_span_id(span_id))


async def test_the_ai_service_gets_our_traceparent_and_none_of_the_clients_baggage_or_tracestate(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    faulty_ai: FaultyAi,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    user = await make_user(db)
    headers = {**bearer(make_settings(database_url, tmp_path), user), **CALLER_HEADERS}
    async with traced_client(AI_SERVICE_URL=f"{faulty_ai.url}/ok") as client:
        response = await client.post("/api/scan", headers=headers, files={"text": (None, "tight budget")})
    assert response.status_code == 201, response.text
    [call] = by_name(spans.get_finished_spans())["POST ai-service"]
    [seen] = faulty_ai.seen
    _only_our_traceparent(seen.headers, call.context.span_id)


async def test_an_identity_provider_gets_our_traceparent_and_none_of_the_clients_baggage_or_tracestate(
    traced_client: TracedClient, spans: InMemorySpanExporter
) -> None:
    response, provider = await request_fetching_keys(traced_client, spans, CALLER_HEADERS)
    assert response.status_code == 200, response.text
    [fetch] = by_name(spans.get_finished_spans())["GET identity-provider"]
    [seen] = provider.seen
    _only_our_traceparent(seen, fetch.context.span_id)
