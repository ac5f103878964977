"""The lean OTLP encoder's bytes parse to the very message opentelemetry's own encoder builds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import asyncpg
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from service.observability.otlp_encoding import encode_request, lean_or_none
from tests.conftest import bearer, make_settings, make_user
from tests.observability.conftest import TracedClient

RESOURCE = Resource(
    {"service.name": "service", "service.version": "1.2.3", "process.pid": 4242, "host.arch": "x86_64"}
)
HTTP = InstrumentationScope("service.http", "1.2.3")
DB = InstrumentationScope("service.db", "1.2.3")
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
START = 1_765_000_000_000_000_000
SAMPLED = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)


def _context(span_id: int, state: TraceState | None = None, remote: bool = False) -> SpanContext:
    return SpanContext(TRACE_ID, span_id, remote, SAMPLED, state or TraceState())


def make_span(
    name: str,
    span_id: int,
    parent: SpanContext | None,
    attributes: dict[str, object],
    scope: InstrumentationScope = HTTP,
    kind: SpanKind = SpanKind.SERVER,
    state: TraceState | None = None,
    **more: object,
) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        context=_context(span_id, state),
        parent=parent,
        resource=RESOURCE,
        attributes=attributes,
        kind=kind,
        start_time=START + (span_id & 0xFFFF),
        end_time=START + (span_id & 0xFFFF) + 1_234_567,
        instrumentation_scope=scope,
        **more,  # type: ignore[arg-type]
    )


def representative_spans() -> list[ReadableSpan]:
    caller = _context(0x00F067AA0BA902B7, TraceState([("vendor", "opaque"), ("other", "x-1")]), remote=True)
    server = make_span(
        "GET /api/{user_id}/tasks",
        0xAB,
        caller,
        {
            "http.method": "GET",
            "http.scheme": "http",
            "http.target": "/api/5f0c/tasks",
            "http.route": "/api/{user_id}/tasks",
            "http.status_code": 200,
            "request.id": "",
        },
        state=caller.trace_state,
    )
    statement = make_span(
        "tasks/list_tasks",
        0xFFFF_FFFF_FFFF_FFFF,
        server.context,
        {
            "db.system.name": "postgresql",
            "db.query.text": "SELECT * FROM tasks WHERE owner = $1 -- " + "é" * 300 + " ✓ 日本語 🙂" * 200,
        },
        scope=DB,
        kind=SpanKind.CLIENT,
    )
    error = make_span(
        "POST /api/{user_id}/tasks",
        0x1,
        None,
        {"http.status_code": 500, "negative": -1, "most negative": -(1 << 63), "largest": (1 << 63) - 1},
        events=[
            Event(
                "exception",
                {
                    "exception.type": "asyncpg.exceptions.UndefinedTableError",
                    "exception.message": 'relation "tasks" does not exist',
                    "exception.stacktrace": "Traceback (most recent call last):\n" * 50,
                    "exception.escaped": "False",
                    "http.method": "GET",  # as on the server span, where it is a span attribute
                },
                START + 99,
            ),
            Event("retry", None, START + 100),
        ],
        status=Status(StatusCode.ERROR, "UndefinedTableError"),
    )
    odd = make_span(
        "",
        0x2,
        _context(0x3),
        {
            "ratio": 0.1,
            "zero": 0.0,
            "negative float": -2.5e-300,
            "true": True,
            "false": False,
            "zero int": 0,
            "empty": "",
            "names": ("a", "ß", ""),
            "numbers": [1, -2, 3],
            "flags": (True, False),
            "floats": (1.5, -0.0),
            "nothing": (),
        },
        scope=InstrumentationScope("opentelemetry.instrumentation.httpx", "0.1", "https://schema", {"k": 1}),
        kind=SpanKind.INTERNAL,
        status=Status(StatusCode.OK),
    )
    return [server, statement, error, odd]


def sdk_spans() -> Sequence[ReadableSpan]:
    """Spans as the SDK's own tracer ends them (what the httpx instrumentation hands the processor)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("opentelemetry.instrumentation.httpx", "0.66b2")
    with tracer.start_as_current_span("GET ai-service", kind=SpanKind.CLIENT) as client:
        client.set_attribute("http.response.status_code", 503)
        client.set_attribute("peer.service", "ai-service")
        client.set_status(Status(StatusCode.ERROR))
        with tracer.start_as_current_span("inner", attributes={"list": ["x", "y"]}) as inner:
            inner.add_event("note", {"n": 1})
    provider.shutdown()
    return memory.get_finished_spans()


def _both(spans: Sequence[ReadableSpan]) -> tuple[ExportTraceServiceRequest, ExportTraceServiceRequest]:
    lean = ExportTraceServiceRequest.FromString(encode_request(spans))
    return lean, encode_spans(spans)


def test_the_lean_bytes_parse_to_the_library_encoders_message() -> None:
    spans = representative_spans()
    lean, library = _both(spans)
    assert lean == library
    assert len(lean.resource_spans) == 1
    assert [len(scope.spans) for scope in lean.resource_spans[0].scope_spans] == [2, 1, 1]


def test_spans_of_the_sdks_own_tracer_and_of_two_resources_encode_alike() -> None:
    other = ReadableSpan(
        name="elsewhere",
        context=_context(0x77),
        resource=Resource({"service.name": "other"}, "https://resource-schema"),
        kind=SpanKind.PRODUCER,
        start_time=START,
        end_time=START + 1,
    )
    spans = [*sdk_spans(), other, *representative_spans()]
    lean, library = _both(spans)
    assert lean == library
    assert len(lean.resource_spans) == 2


def test_each_span_alone_encodes_alike() -> None:
    for span in [*representative_spans(), *sdk_spans()]:
        lean, library = _both([span])
        assert lean == library, span.name


async def test_the_spans_of_real_requests_encode_alike(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    user = await make_user(db)
    headers = {
        **bearer(make_settings(database_url, tmp_path), user),
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "vendor=opaque",
    }
    async with traced_client() as client:
        assert (await client.get(f"/api/{user}/tasks", headers=headers)).status_code == 200
        assert (await client.get("/api/no/such/thing")).status_code == 404
    finished = spans.get_finished_spans()
    assert len(finished) >= 3
    lean, library = _both(finished)
    assert lean == library


@pytest.mark.parametrize(
    "attributes",
    [{"big": 1 << 63}, {"bytes": b"\x00"}, {"nested": (("a",),)}, {"surrogate": "\udc80"}, {"none": (None,)}],
)
def test_what_it_does_not_handle_is_left_to_the_library(attributes: dict[str, object]) -> None:
    lone = make_span("x", 0x5, None, attributes)
    assert lean_or_none([*representative_spans(), lone]) is None


def test_links_are_left_to_the_library() -> None:
    lone = make_span("x", 0x5, None, {}, links=[Link(_context(0x6))])
    assert lean_or_none([lone]) is None
