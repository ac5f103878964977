"""OpenTelemetry's internals the service relies on (service/compat/opentelemetry.py): the OTLP/HTTP
span exporter still sends bytes through its `_client`, as the lean exporter needs
(service/observability/otlp_encoding.py; without it every batch would go the library's slower
way), and the batch span processor still keeps its queue where ExportQueue looks."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.compat.opentelemetry import batch_queue, otlp_http_client
from service.observability.otlp_encoding import LeanOtlpSpanExporter, encode_request
from tests.observability.otlp_receiver import otlp_receiver
from tests.observability.test_otlp_encoding import representative_spans


def test_the_library_exporters_client_posts_bytes_given_to_it() -> None:
    data = encode_request(representative_spans())
    with otlp_receiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces")
        client = otlp_http_client(exporter)
        assert client is not None, "the exporter has no `_client` with an `export` method"
        assert exporter._client is client
        assert client.export(data).success
        exporter.shutdown()
    assert receiver.bodies == [data]
    assert {span.name for span in receiver.snapshot()} >= {"tasks/list_tasks", "GET /api/{user_id}/tasks"}


def test_the_lean_exporter_finds_the_client() -> None:
    exporter = LeanOtlpSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    assert otlp_http_client(exporter.library) is not None
    exporter.shutdown()


def test_the_batch_processor_keeps_its_queue_where_the_export_queue_looks() -> None:
    """ExportQueue (service/observability/export_queue.py) reads the SDK batch processor's queue
    length and bound; without them it would leave full-queue drops to the SDK's slower way."""
    exporter = InMemorySpanExporter()
    processor = BatchSpanProcessor(
        exporter, max_queue_size=5, max_export_batch_size=5, schedule_delay_millis=60_000
    )
    found = batch_queue(processor)
    assert found is not None, "BatchSpanProcessor has no `_batch_processor._queue` and `_max_queue_size`"
    queue, bound = found
    assert bound == 5
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    for number in range(3):
        provider.get_tracer("test").start_span(f"span {number}").end()
    assert len(queue) == 3, "ended spans wait in that queue"
    provider.shutdown()
    assert [span.name for span in exporter.get_finished_spans()] == ["span 0", "span 1", "span 2"]
