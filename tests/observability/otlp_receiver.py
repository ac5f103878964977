"""A minimal OTLP/HTTP trace receiver on loopback: what a collector sees, decoded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.processes import http_server_in_thread

HELD_SECONDS = 20


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, object]
    resource: dict[str, object]


@dataclass
class OtlpReceiver:
    url: str = ""
    decode: bool = True
    spans: list[ReceivedSpan] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # A slow collector: while closed, each export request waits for it (HELD_SECONDS at most).
    open: threading.Event = field(default_factory=threading.Event)
    held: int = 0

    def received(self, body: bytes) -> None:
        with self.lock:
            self.requests += 1
            self.bodies.append(body)
        if not self.decode:
            return
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received = ReceivedSpan(
                        span.name,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        span.kind,
                        _attributes(span.attributes),
                        resource,
                    )
                    with self.lock:
                        self.spans.append(received)

    def snapshot(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)


def _attributes(pairs: object) -> dict[str, object]:
    decoded: dict[str, object] = {}
    for pair in pairs:  # type: ignore[attr-defined]
        value = pair.value
        decoded[pair.key] = getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
    return decoded


@contextmanager
def otlp_receiver(decode: bool = True, slow: bool = False) -> Iterator[OtlpReceiver]:
    """Serve POST /v1/traces on 127.0.0.1 and a free port until the block ends. `slow`: each
    request waits until `receiver.open` is set (HELD_SECONDS at most), as a collector that
    answers late."""
    receiver = OtlpReceiver(decode=decode)
    if not slow:
        receiver.open.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if not receiver.open.is_set():
                with receiver.lock:
                    receiver.held += 1
                receiver.open.wait(HELD_SECONDS)
            if self.path == "/v1/traces":
                receiver.received(body)
                status, answer = 200, ExportTraceServiceResponse().SerializeToString()
            else:
                status, answer = 404, b""
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with http_server_in_thread(Handler) as server:
        receiver.url = f"http://127.0.0.1:{server.server_port}"
        try:
            yield receiver
        finally:
            receiver.open.set()  # no request held past the block
