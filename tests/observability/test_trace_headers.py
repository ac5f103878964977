"""Issue 23: with tracing on, what our dependencies receive is our own trace context alone. A
client's `baggage` and `tracestate` reach neither the AI service nor an identity provider; the
`traceparent` they get names our client span, in the client's trace."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id

from tests.conftest import bearer, make_settings, make_user
from tests.observability.conftest import TracedClient, by_name
from tests.providers.conftest import SigningKey, new_key, supabase_claims
from tests.scans.conftest import FaultyAi

CALLER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_HEADERS = {
    "traceparent": f"00-{CALLER_TRACE_ID}-b7ad6b7169203331-01",
    "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    "baggage": "userId=alice,isProduction=false,secret=from-the-client",
}


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

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    jwks.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield jwks
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


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
    known, minted = new_key("ES256"), new_key("ES256")
    provider = RecordingJwks()
    provider.publish(known)
    with recording(provider):
        async with traced_client(SUPABASE_URL=provider.url) as client:
            provider.seen.clear()  # the start-up check's fetch belongs to no request
            provider.publish(known, minted)  # a key the request has to fetch
            token = minted.sign(supabase_claims(provider.url))
            response = await client.get(
                "/api/auth/me", headers={"Authorization": f"Bearer {token}", **CALLER_HEADERS}
            )
    assert response.status_code == 200, response.text
    [fetch] = [span for span in by_name(spans.get_finished_spans())["GET identity-provider"] if span.parent]
    [seen] = provider.seen
    _only_our_traceparent(seen, fetch.context.span_id)
