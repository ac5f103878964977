"""Logging: one JSON object per line (or plain text), configured once per process."""

from __future__ import annotations

import asyncio
import atexit
import logging
import re
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import msgspec

from service.compat.stdlib import skip_caller_lookup

_encoder = msgspec.json.Encoder()
# uvicorn adds `color_message`, its message with ANSI colours for its own console formatter:
# in a JSON line it would only repeat `message` with escape codes.
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}
# JSON allows U+2028 and U+2029 raw inside strings, and msgspec writes them so; but JavaScript
# before ES2019 and tools that split on Unicode line breaks read them as the end of a line, so
# a request path with one would split its record. Escaped, every record is one line for all.
_LINE_SEPARATOR, _PARAGRAPH_SEPARATOR = "\u2028".encode(), "\u2029".encode()


def _escape_separators(line: bytes) -> bytes:
    # Most lines are ASCII: one search for the separators' lead byte (memchr) settles them,
    # 0.2 us for a 230-byte access line where searching for both separators took 1.6 us
    # (`python -m timeit`, on a busy 2-core machine).
    if b"\xe2" not in line:
        return line
    return line.replace(_LINE_SEPARATOR, b"\\u2028").replace(_PARAGRAPH_SEPARATOR, b"\\u2029")


# The ASGI scope of the request being handled, set by the outermost layer (service.http.middleware):
# its request_id, and trace_id once the tracing layer has started the server span.
request_context: ContextVar[Mapping[str, Any] | None] = ContextVar("request_context", default=None)


class RequestContextFilter(logging.Filter):
    """Gives every record written while a request is handled that request's `request_id` and,
    when traced, `trace_id`: the line with a 500's stack trace names the request and trace its
    problem body names."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = request_context.get()
        if scope is not None:
            record.request_id = scope.get("request_id")
            trace_id = scope.get("trace_id")
            if trace_id is not None:
                record.trace_id = trace_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _escape_separators(_encoder.encode(entry)).decode()


# In text logs a record is one line whatever it quotes: a request path with %0A, or an exception
# message with a newline, would otherwise start a line that reads as a record of its own. The
# backslash is escaped too, so a path with a literal backslash-n cannot pass for an escaped newline.
_UNSAFE_IN_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")
# A field of the text access line also ends at a space.
_UNSAFE_IN_TEXT_FIELD = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029\\]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == ord("\\"):
        return "\\\\"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_for_text(text: str) -> str:
    """`text` with control characters and backslashes escaped, so it stays on one line."""
    return _UNSAFE_IN_TEXT.sub(_escape, text)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message`, one line per record: a traceback is kept, its newlines escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line += f" request_id={request_id}"
            trace_id = getattr(record, "trace_id", None)
            if trace_id is not None:
                line += f" trace_id={trace_id}"
        return line

    def format(self, record: logging.LogRecord) -> str:
        return escape_for_text(super().format(record))


# Access lines are written in batches: at most this long after the first unwritten one, or
# as soon as this many bytes wait, and at shutdown (the app's lifespan and atexit).
ACCESS_LOG_FLUSH_SECONDS = 0.2
ACCESS_LOG_FLUSH_BYTES = 64 * 1024


class _AccessLine(msgspec.Struct, omit_defaults=True):
    """The JSON access line: the fields JsonFormatter prints, then the request's own (trace_id
    only when the request was traced)."""

    ts: str
    level: str
    logger: str
    message: str
    request_id: str
    method: str
    path: str
    status: int
    duration_ms: float
    client: str | None
    trace_id: str | None = None


class AccessLog:
    """The access log's own path to the log stream: one line per request, the same line the
    `service.access` logger would print through the configured formatter, without building a
    LogRecord and going through handler locks (measured: logging.info was about 8 % of a
    task-list request's CPU). It honours the `service.access` logger's level and the configured
    format, and writes to the same stream as every other record.

    Lines are encoded straight to bytes and written in batches, like nginx's `access_log
    buffer= flush=`: one write per ACCESS_LOG_FLUSH_SECONDS or ACCESS_LOG_FLUSH_BYTES instead of
    a write and a flush per request (about 6 % of a task-list request's CPU). So an access line
    can reach the stream up to 0.2 s after records logged later, and a worker killed with
    SIGKILL loses at most that much of its access log; a normal shutdown writes everything.
    """

    logger = logging.getLogger("service.access")

    def __init__(self) -> None:
        self.stream: Any = sys.stderr
        self.json = True
        self._second = -1
        self._stamp = ""
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def configure(self, stream: Any, *, json: bool) -> None:
        self.flush()  # what waits belongs to the old stream
        self.stream = stream
        self.json = json
        self._second = -1  # the cached timestamp was in the other format, perhaps

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def _timestamp(self, now: float) -> tuple[str, int]:
        second = int(now)
        if second != self._second:
            self._second = second
            pattern = "%Y-%m-%dT%H:%M:%S" if self.json else "%Y-%m-%d %H:%M:%S"
            self._stamp = time.strftime(pattern, time.gmtime(now) if self.json else time.localtime(now))
        return self._stamp, int((now - second) * 1000)

    def write(
        self,
        request_id: str,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        client: str | None,
        trace_id: str | None = None,
    ) -> None:
        stamp, millis = self._timestamp(time.time())
        if self.json:
            line = _escape_separators(
                _encoder.encode(
                    _AccessLine(
                        f"{stamp}.{millis:03d}Z",
                        "INFO",
                        "service.access",
                        "request",
                        request_id,
                        method,
                        path,
                        status,
                        duration_ms,
                        client,
                        trace_id,
                    )
                )
            )
        else:
            line = (
                f"{stamp},{millis:03d} INFO service.access request request_id={request_id} "
                f"method={method} path={_UNSAFE_IN_TEXT_FIELD.sub(_escape, path)} status={status} "
                f"duration_ms={duration_ms} client={client}" + (f" trace_id={trace_id}" if trace_id else "")
            ).encode()
        self._pending.append(line)
        self._pending_bytes += len(line) + 1
        if self._pending_bytes >= ACCESS_LOG_FLUSH_BYTES:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not serving: nothing will come back to flush it
            self.flush()
            return
        if self._timer is None or self._timer_loop is not loop:
            self._timer = loop.call_later(ACCESS_LOG_FLUSH_SECONDS, self.flush)
            self._timer_loop = loop

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        self._pending.append(b"")
        data = b"\n".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        try:
            binary = getattr(self.stream, "buffer", None)
            if binary is not None:
                self.stream.flush()  # text another record left in the text layer goes first
                binary.write(data)
                binary.flush()
            else:
                self.stream.write(data.decode())
                self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not fail the request
            pass


access_log = AccessLog()
atexit.register(access_log.flush)


def configure_logging(level: str, fmt: str) -> None:
    # Neither format prints them; not gathering them saves work on every access-log line.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Nor the caller's file and line: finding them walks the stack for every record.
    skip_caller_lookup()
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    handler.addFilter(RequestContextFilter())
    access_log.configure(handler.stream, json=fmt == "json")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "yoyo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
