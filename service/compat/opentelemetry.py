"""OpenTelemetry internals.

Two are used, each found through a function here that returns None when a release has moved it;
tests/compat/test_opentelemetry.py fails if one moves.

`OTLPSpanExporter._client` (opentelemetry-exporter-otlp-proto-http): the exporter's HTTP client,
whose `export(bytes)` posts an already serialized request with the exporter's endpoint, headers,
timeout, compression, TLS settings and retries with backoff. The lean span exporter
(service/observability/otlp_encoding.py) hands it the bytes it encodes itself; there is no
public way to send bytes through the exporter. Without it, every batch goes the library's way.

`BatchSpanProcessor._batch_processor._queue` and `._max_queue_size` (opentelemetry-sdk): the
queue of ended spans waiting for export, and its bound. The service's processor
(service/observability/export_queue.py) looks at its length to drop a span that would not fit
before the SDK builds a warning for it; there is no public way to ask how full the queue is.
Without them, spans are dropped the SDK's way (the oldest, with a log record built for each).
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any, Protocol


class ExportResult(Protocol):
    success: bool


class BytesClient(Protocol):
    def export(self, data: bytes) -> ExportResult: ...


def otlp_http_client(exporter: Any) -> BytesClient | None:
    """The HTTP client of an OTLP/HTTP span exporter, or None if this release has none."""
    client = getattr(exporter, "_client", None)
    return client if callable(getattr(client, "export", None)) else None


def batch_queue(processor: Any) -> tuple[Sized, int] | None:
    """The queue of ended spans a BatchSpanProcessor holds for export, and the most it holds, or
    None if this release keeps them elsewhere."""
    batch = getattr(processor, "_batch_processor", None)
    queue = getattr(batch, "_queue", None)
    bound = getattr(batch, "_max_queue_size", None)
    if not isinstance(queue, Sized) or not isinstance(bound, int) or bound < 1:
        return None
    return queue, bound
