"""The OTLP/HTTP span exporter still sends bytes through its `_client` (an internal), as the lean
exporter relies on (service/compat/opentelemetry.py, used by service/observability/otlp_encoding.py;
without it every batch would go the library's slower way)."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from service.compat.opentelemetry import otlp_http_client
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
