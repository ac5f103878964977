"""uvicorn's httptools protocol with the limits it lacks against hostile clients.

uvicorn reads a request head of any size (a 16 MiB header, 100,000 headers), waits for the end
of a head forever, and keeps every connection the kernel hands it (its `limit_concurrency`
refuses requests, once their head is complete, not connections). Each worker's protocol here
answers 431 and closes once a head passes `max_header_bytes`, 408 and closes when a head is not
complete `header_timeout_seconds` after its first byte (or after the connection opened), and 503
and closes a connection beyond `max_connections`. Everything else is uvicorn's httptools
protocol, so its speed is kept (bench/README.md, "Request head limits").
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import msgspec
from uvicorn.config import Config
from uvicorn.server import ServerState

from service.compat.uvicorn import HttpToolsProtocol
from service.settings import Settings

log = logging.getLogger("service.http")


class HttpLimits(msgspec.Struct, frozen=True):
    max_header_bytes: int
    header_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_header_bytes=settings.http_max_header_bytes,
            header_timeout_seconds=settings.http_header_timeout_seconds,
            max_connections=settings.http_max_connections,
        )


def _refusal(status: int, reason: str, detail: str, extra_headers: bytes = b"") -> bytes:
    body = msgspec.json.encode({"status": status, "title": reason, "detail": detail})
    return (
        f"HTTP/1.1 {status} {reason}\r\n".encode()
        + b"content-type: application/problem+json\r\n"
        + extra_headers
        + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._reading_head = False
        self._head_bytes = 0
        self._head_started = 0.0
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("refused a connection: %d open in this worker", len(self.connections) - 1)
            self._refuse(
                _refusal(
                    503,
                    "Service Unavailable",
                    "this worker has as many connections open as it accepts; retry shortly",
                    b"retry-after: 1\r\n",
                )
            )
            return
        self._expect_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._reading_head:
            super().data_received(data)
            return
        room = self.limits.max_header_bytes - self._head_bytes
        self._head_bytes += min(len(data), room)
        if len(data) <= room:
            super().data_received(data)
            return
        # Only what fits in the limit is parsed while the head is incomplete: the parser would
        # otherwise buffer a header value of any size before calling us back.
        if room > 0:
            super().data_received(data[:room])
        if self.transport.is_closing():
            return
        if self._reading_head:
            self._refuse(
                _refusal(
                    431,
                    "Request Header Fields Too Large",
                    f"the request line and headers may be at most {self.limits.max_header_bytes} bytes",
                )
            )
            return
        self.data_received(data[room:])

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._reading_head:  # a keep-alive or pipelined request: its head starts now
            self._expect_head()

    def on_headers_complete(self) -> None:
        # The head clock is left running: it stops itself when it rings with no head being read.
        self._reading_head = False
        super().on_headers_complete()

    def _expect_head(self) -> None:
        # One timer per connection, re-armed lazily, rather than a call_later and a cancel per
        # request: keep-alive requests then only note when their head began (one timer per
        # connection and header timeout). Measured with bench/cpu_per_request.py: bench/README.md.
        self._reading_head = True
        self._head_bytes = 0
        self._head_started = self.loop.time()
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_at(
                self._head_started + self.limits.header_timeout_seconds, self._head_clock_rang
            )

    def _stop_head_clock(self) -> None:
        self._reading_head = False
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_clock_rang(self) -> None:
        self._head_deadline = None
        if not self._reading_head:  # the head it was armed for arrived; the next head re-arms it
            return
        due = self._head_started + self.limits.header_timeout_seconds
        if self.loop.time() < due:  # armed for an earlier head on this connection: wait for this one's
            self._head_deadline = self.loop.call_at(due, self._head_clock_rang)
            return
        self._head_timed_out()

    def _head_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        if self._head_bytes == 0:  # an idle connection nobody used: nothing to answer
            self._refuse(b"")
            return
        self._refuse(
            _refusal(
                408,
                "Request Timeout",
                f"the request line and headers must arrive within {self.limits.header_timeout_seconds:g} s",
            )
        )

    def _refuse(self, answer: bytes) -> None:
        self._stop_head_clock()
        if answer:
            self.transport.write(answer)
        self.transport.close()


def guarded_protocol(settings: Settings) -> functools.partial[GuardedHttpToolsProtocol]:
    """What `service serve` gives uvicorn as its `http` protocol; a partial, so the limits reach
    every worker process (uvicorn pickles its config for them)."""
    return functools.partial(GuardedHttpToolsProtocol, limits=HttpLimits.from_settings(settings))
