"""OpenTelemetry internals.

`OTLPSpanExporter._client` (opentelemetry-exporter-otlp-proto-http): the exporter's HTTP client,
whose `export(bytes)` posts an already serialized request with the exporter's endpoint, headers,
timeout, compression, TLS settings and retries with backoff. The lean span exporter
(service/observability/otlp_encoding.py) hands it the bytes it encodes itself; there is no
public way to send bytes through the exporter. tests/compat/test_opentelemetry.py fails if a
release moves it; until then a missing client sends every batch the library's way.
"""

from __future__ import annotations

from typing import Any, Protocol


class ExportResult(Protocol):
    success: bool


class BytesClient(Protocol):
    def export(self, data: bytes) -> ExportResult: ...


def otlp_http_client(exporter: Any) -> BytesClient | None:
    """The HTTP client of an OTLP/HTTP span exporter, or None if this release has none."""
    client = getattr(exporter, "_client", None)
    return client if callable(getattr(client, "export", None)) else None
