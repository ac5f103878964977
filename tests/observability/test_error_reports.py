"""A 500 can be followed from the answer to the log line, the trace and the error tracker: each
names the same request id and trace id. Sentry is a real loopback receiver of its envelopes, and
nothing secret reaches it.

The 500 is real: the tasks table loses a column the service's SQL reads (as a bad deploy would),
and is given it back after the test.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, format_trace_id

from service.app import create_app
from tests.accounts.conftest import STRONG_PASSWORD
from tests.conftest import bearer, caught_up_first, make_settings, make_user, running
from tests.observability.conftest import TracedClient, by_name
from tests.processes import http_server_in_thread

SECRET_TITLE = "launch code 0000-secret"
ENVELOPE_WAIT_SECONDS = 10.0


@asynccontextmanager
async def broken_tasks_table(db: asyncpg.Connection) -> AsyncIterator[None]:
    await db.execute("ALTER TABLE tasks RENAME COLUMN description TO description_gone")
    try:
        yield
    finally:
        await db.execute("ALTER TABLE tasks RENAME COLUMN description_gone TO description")


def _records(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


async def test_the_stack_trace_of_a_500_names_its_request_and_trace_and_the_span_records_it(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = await make_user(db)
    headers = {**bearer(make_settings(database_url, tmp_path), user), "X-Request-ID": "report-500"}
    async with traced_client(LOG_LEVEL="INFO") as client, broken_tasks_table(db):
        failed = await client.get(f"/api/{user}/tasks", headers=headers)
    assert failed.status_code == 500
    body = failed.json()
    assert body["request_id"] == "report-500"

    [error] = [record for record in _records(capsys.readouterr().err) if record["level"] == "ERROR"]
    assert "UndefinedColumnError" in error["exception"], "the stack trace is in the record"
    assert error["request_id"] == "report-500"
    assert error["trace_id"] == body["trace_id"]

    [server] = by_name(spans.get_finished_spans())["GET /api/{user_id}/tasks"]
    assert format_trace_id(server.context.trace_id) == body["trace_id"]
    assert server.status.status_code is StatusCode.ERROR
    [event] = [event for event in server.events if event.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"].endswith("UndefinedColumnError")
    assert "Traceback" in str(event.attributes["exception.stacktrace"])


async def test_text_logs_name_the_request_on_every_record_written_for_it(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    user = await make_user(db)
    settings = make_settings(database_url, tmp_path, LOG_FORMAT="text", LOG_LEVEL="INFO")
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            async with broken_tasks_table(db):
                failed = await client.get(
                    f"/api/{user}/tasks", headers={**bearer(settings, user), "X-Request-ID": "text-500"}
                )
            # A record of a request that is not a failure: the database refusing a value (a NUL).
            refused = await client.post(
                "/api/auth/login",
                data={"username": "a\x00b@example.com", "password": "x"},
                headers={"X-Request-ID": "text-400"},
            )
    assert failed.status_code == 500
    assert refused.status_code in (400, 401)
    lines = capsys.readouterr().err.splitlines()
    [error] = [line for line in lines if " ERROR service.errors " in line]
    assert "request_id=text-500" in error
    assert "UndefinedColumnError" in error, "the traceback stays on the same line"
    outside = [line for line in lines if "request_id=" not in line and "service.access" not in line]
    assert all("unhandled error" not in line for line in outside)


@dataclass
class SentryReceiver:
    """POST /api/<project>/envelope/ on loopback, as Sentry's ingest answers it."""

    dsn: str = ""
    envelopes: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[dict[str, Any]]:
        found = []
        with self.lock:
            envelopes = list(self.envelopes)
        for raw in envelopes:
            lines = raw.split(b"\n")
            # header line, then (item header, item payload) pairs
            for item_header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(item_header).get("type") == "event":
                    found.append(json.loads(payload))
        return found

    def raw(self) -> bytes:
        with self.lock:
            return b"\n".join(self.envelopes)


@contextmanager
def sentry_receiver() -> Iterator[SentryReceiver]:
    receiver = SentryReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            encoding = self.headers.get("content-encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding == "br":  # sentry-sdk's choice whenever the brotli module is installed
                import brotli

                body = brotli.decompress(body)
            elif encoding:
                body = b"undecoded " + encoding.encode()
            known = self.path.startswith("/api/") and self.path.endswith("/envelope/")
            if known:
                with receiver.lock:
                    receiver.envelopes.append(body)
            answer = b"{}" if known else b""
            self.send_response(200 if known else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with http_server_in_thread(Handler) as server:
        receiver.dsn = f"http://publickey@127.0.0.1:{server.server_port}/42"
        yield receiver


async def test_a_500_reaches_sentry_with_its_request_id_and_no_secret_does(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    with sentry_receiver() as receiver:
        settings = make_settings(database_url, tmp_path, SENTRY_DSN=receiver.dsn)
        app = create_app(settings)
        async with running(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver", event_hooks=caught_up_first(app)
            ) as client:
                email = f"sentry-{uuid.uuid4().hex[:8]}@example.com"
                account = {"email": email, "password": STRONG_PASSWORD}
                user_id = (await client.post("/api/auth/register", json=account)).json()["id"]
                login = await client.post(
                    "/api/auth/login", data={"username": email, "password": STRONG_PASSWORD}
                )
                tokens = login.json()
                headers = {
                    "Authorization": f"Bearer {tokens['access_token']}",
                    "Cookie": f"refresh_token={tokens['refresh_token']}",
                    "X-Request-ID": "sentry-500",
                }
                created = await client.post(
                    f"/api/{user_id}/tasks", json={"title": "before"}, headers=headers
                )
                not_found = await client.get(f"/api/{user_id}/tasks/999999", headers=headers)
                wrong_password = await client.post(
                    "/api/auth/login", data={"username": email, "password": "not " + STRONG_PASSWORD}
                )
                async with broken_tasks_table(db):
                    failed = await client.patch(
                        f"{created.headers['location']}?token={tokens['refresh_token']}",
                        json={"title": SECRET_TITLE},
                        headers=headers,
                    )
        assert (not_found.status_code, wrong_password.status_code, failed.status_code) == (404, 401, 500)

        deadline = time.monotonic() + ENVELOPE_WAIT_SECONDS
        while not receiver.events() and time.monotonic() < deadline:
            time.sleep(0.05)
        [event] = receiver.events()  # the 500 only: no 4xx is an error worth tracking
        assert event["tags"]["request_id"] == "sentry-500"
        assert event["request"] == {"method": "PATCH", "url": f"/api/{user_id}/tasks/{created.json()['id']}"}
        [exception] = event["exception"]["values"]
        assert exception["type"] == "UndefinedColumnError"
        assert exception["stacktrace"]["frames"], "the stack trace is there"

        raw = receiver.raw()
        for secret in (tokens["access_token"], tokens["refresh_token"], STRONG_PASSWORD, SECRET_TITLE, email):
            assert secret.encode() not in raw, f"{secret[:12]}... reached the error tracker"


def test_sentry_dsn_is_refused_when_it_is_not_one(database_url: str, tmp_path: Path) -> None:
    from service.settings import SettingsError

    with pytest.raises(SettingsError, match="SENTRY_DSN"):
        make_settings(database_url, tmp_path, SENTRY_DSN="not a dsn")
