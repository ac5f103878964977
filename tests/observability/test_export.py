"""Traces on the wire: `service serve` exporting over OTLP/HTTP to a receiver on loopback, with
several workers, and to a collector that is down."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent import futures
from pathlib import Path

import asyncpg
import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.observability.otlp_encoding import LeanOtlpSpanExporter, encode_request
from service.observability.tracing import create_tracer_provider, stop_tracer_provider
from service.settings import Settings, SettingsError, load_settings
from tests.conftest import bearer, make_settings, make_user
from tests.observability.otlp_receiver import ReceivedSpan, otlp_receiver
from tests.observability.test_otlp_encoding import make_span, representative_spans, sdk_spans
from tests.processes import closed_port_url, serve

SERVER_KIND = 2  # OTLP's SPAN_KIND_SERVER
DEADLINE_SECONDS = 60
# Export quickly: the receiver is polled rather than waited on for the default 5 s.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


async def _task_lists(base: str, user: uuid.UUID, headers: dict[str, str], count: int) -> list[int]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        answers = await asyncio.gather(
            *(client.get(f"/api/{user}/tasks", headers=headers) for _ in range(count))
        )
    return [answer.status_code for answer in answers]


async def test_every_worker_exports_its_spans_over_otlp_http(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    user = await make_user(db)
    trace_id = uuid.uuid4().hex
    headers = {
        **bearer(make_settings(database_url, tmp_path), user),
        "traceparent": f"00-{trace_id}-{'ab' * 8}-01",
    }
    with (
        otlp_receiver() as receiver,
        serve(
            database_url, tmp_path, "--workers", "2", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, **FAST_EXPORT
        ) as server,
    ):
        deadline = time.monotonic() + DEADLINE_SECONDS
        servers: list[ReceivedSpan] = []
        while len({span.resource["process.pid"] for span in servers}) < 2:
            assert time.monotonic() < deadline, f"spans from {len(servers)} requests, not from two workers"
            assert set(await _task_lists(server.url, user, headers, 20)) == {200}
            await asyncio.sleep(0.2)
            servers = [span for span in receiver.snapshot() if span.kind == SERVER_KIND]
    received = receiver.snapshot()
    for server_span in servers:
        assert server_span.name == "GET /api/{user_id}/tasks"
        assert server_span.trace_id == trace_id
        assert server_span.resource["service.name"] == "service"
        assert server_span.attributes["http.route"] == "/api/{user_id}/tasks"
        assert server_span.attributes["http.status_code"] == 200
    statements = {span.parent_span_id: span for span in received if span.name == "tasks/list_tasks"}
    assert {span.span_id for span in servers} & set(statements), "statement spans are children of requests"
    assert statements.popitem()[1].attributes["db.system.name"] == "postgresql"


def test_the_receiver_gets_from_the_lean_exporter_what_the_library_exporter_sends() -> None:
    batches = [
        [*representative_spans(), *sdk_spans()],
        # Left to the library's encoder whole: a bytes value.
        [*representative_spans(), make_span("raw", 0x9, None, {"raw": b"\x00\xff"})],
    ]
    with otlp_receiver() as lean, otlp_receiver() as library:
        ours = LeanOtlpSpanExporter(endpoint=f"{lean.url}/v1/traces")
        theirs = OTLPSpanExporter(endpoint=f"{library.url}/v1/traces")
        for batch in batches:
            assert ours.export(batch) is SpanExportResult.SUCCESS
            assert theirs.export(batch) is SpanExportResult.SUCCESS
        ours.shutdown()
        theirs.shutdown()
    assert lean.snapshot() == library.snapshot()
    assert len(lean.snapshot()) == sum(len(batch) for batch in batches)
    parsed = [trace_service_pb2.ExportTraceServiceRequest.FromString(body) for body in lean.bodies]
    assert parsed == [encode_spans(batch) for batch in batches]
    assert lean.bodies[0] == encode_request(batches[0]), "the first batch went the lean way"


async def test_an_unreachable_collector_neither_fails_nor_stalls_requests(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    user = await make_user(db)
    headers = bearer(make_settings(database_url, tmp_path), user)
    closed = closed_port_url()
    # Each export would keep retrying for longer than the client waits for any answer.
    with serve(
        database_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=closed,
        OTEL_EXPORTER_OTLP_TIMEOUT="30",
        LOG_LEVEL="INFO",
        **FAST_EXPORT,
    ) as server:
        for _ in range(5):
            assert set(await _task_lists(server.url, user, headers, 40)) == {200}
            await asyncio.sleep(0.3)  # a batch goes out, and fails, between the rounds
    assert '"trace_id":' in server.output(), "requests were traced all the same"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "10"),
    ],
)
def test_a_bad_otel_variable_stops_start_up_naming_it(tmp_path: Path, variable: str, value: str) -> None:
    environ = {"ENVIRONMENT": "test", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", variable: value}
    with pytest.raises(SettingsError, match=variable):
        load_settings(environ, env_file=tmp_path / "absent.env")


def test_the_endpoint_turns_tracing_on_and_the_sampler_follows_the_standard_names(tmp_path: Path) -> None:
    def settings(**environ: str) -> Settings:
        return load_settings({"ENVIRONMENT": "test", **environ}, env_file=tmp_path / "absent.env")

    assert not settings().tracing_enabled
    assert settings(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:4318/v1/traces").tracing_enabled
    assert not settings(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318", OTEL_SDK_DISABLED="true"
    ).tracing_enabled
    tenth = create_tracer_provider(
        settings(
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0.1",
        ),
        SimpleSpanProcessor(InMemorySpanExporter()),
    )
    assert "TraceIdRatioBased{0.1}" in tenth.sampler.get_description()
    assert tenth.resource.attributes["service.name"] == "service"


class _GrpcCollector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.names: list[str] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.names.extend(span.name for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_the_grpc_protocol_exports_to_a_grpc_collector(tmp_path: Path) -> None:
    collector = _GrpcCollector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        settings = load_settings(
            {
                "ENVIRONMENT": "test",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            env_file=tmp_path / "absent.env",
        )
        provider = create_tracer_provider(settings)
        with provider.get_tracer("test").start_as_current_span("over-grpc"):
            pass
        assert provider.force_flush(timeout_millis=30_000)
        stop_tracer_provider(provider)
    finally:
        server.stop(grace=None)
    assert collector.names == ["over-grpc"]
