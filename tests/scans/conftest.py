"""Real AI peers on loopback: the demo AI service, and a misbehaving one of our own.

Both run under uvicorn in a thread on a port the kernel picks. The misbehaving service picks
its behaviour from the first path segment, so each test points AI_SERVICE_URL at
`{fault_ai.url}/<behaviour>` and the app calls `{that}/scan`.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from service.integrations.ai_service.demo import create_demo_app
from service.settings import Settings
from tests import processes
from tests.conftest import bearer, make_settings, make_user, serving

# Small, so oversize bodies in tests stay small too.
TEST_MAX_UPLOAD_BYTES = 32 * 1024
# Short, so the slow-AI tests are quick, but not so short that a healthy answer misses it on a
# loaded machine (0.5 s did, in CI runs beside other work).
FAULT_TIMEOUT_SECONDS = "2"


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 and a free port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


@pytest.fixture(scope="session")
def demo_ai_url() -> Iterator[str]:
    with serve_in_thread(create_demo_app()) as url:
        yield url


class SeenRequest:
    def __init__(self, path: str, headers: dict[str, str], body: bytes) -> None:
        self.path = path
        self.headers = headers
        self.body = body


def _valid_answer(source: str = "model") -> bytes:
    risk = {"risk": "Budget overrun", "category": "Financial", "context": "The budget is tight."}
    return json.dumps({"data": [risk], "source": source}).encode()


class FaultyAi:
    """An ASGI AI service that misbehaves on request; it records every request it receives."""

    def __init__(self) -> None:
        self.seen: list[SeenRequest] = []
        self.url = ""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.seen.append(SeenRequest(scope["path"], headers, body))
        behaviour = scope["path"].strip("/").split("/")[0]
        await getattr(self, "_" + behaviour.replace("-", "_"))(receive, send)

    @staticmethod
    async def _answer(
        send: Any, status: int, body: bytes, content_type: str = "application/json", **headers: str
    ) -> None:
        raw_headers = [(b"content-type", content_type.encode())]
        raw_headers += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})

    async def _ok(self, receive: Any, send: Any) -> None:
        await self._answer(send, 200, _valid_answer())

    async def _silent(self, receive: Any, send: Any) -> None:
        """Never answers; returns when the client gives up."""
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _trickle(self, receive: Any, send: Any) -> None:
        """Starts a valid-looking answer, then sends a byte at a time, each well within any read timeout."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        gone = asyncio.ensure_future(receive())
        while not gone.done():
            await send({"type": "http.response.body", "body": b" ", "more_body": True})
            await asyncio.wait({gone}, timeout=0.05)

    async def _reject_422(self, receive: Any, send: Any) -> None:
        await self._answer(send, 422, json.dumps({"detail": "The document has no readable text"}).encode())

    async def _reject_validation(self, receive: Any, send: Any) -> None:
        detail = [{"loc": ["body", "text"], "msg": "field required", "type": "missing"}]
        await self._answer(send, 400, json.dumps({"detail": detail}).encode())

    async def _reject_text(self, receive: Any, send: Any) -> None:
        await self._answer(send, 413, b"  Document too long for the model  ", "text/plain")

    async def _reject_long(self, receive: Any, send: Any) -> None:
        await self._answer(send, 400, json.dumps({"detail": "x" * 5000}).encode())

    async def _unauthorized(self, receive: Any, send: Any) -> None:
        await self._answer(send, 401, json.dumps({"detail": "invalid API key"}).encode())

    async def _busy(self, receive: Any, send: Any) -> None:
        await self._answer(send, 429, json.dumps({"detail": "quota exceeded"}).encode(), retry_after="30")

    async def _crash(self, receive: Any, send: Any) -> None:
        await self._answer(send, 500, json.dumps({"detail": "model crashed: CUDA out of memory"}).encode())

    async def _html_error(self, receive: Any, send: Any) -> None:
        await self._answer(send, 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")

    async def _garbage(self, receive: Any, send: Any) -> None:
        await self._answer(send, 200, b"\x89PNG not json at all", "application/json")

    async def _wrong_shape(self, receive: Any, send: Any) -> None:
        await self._answer(send, 200, json.dumps({"risks": [], "source": "model"}).encode())

    async def _wrong_source(self, receive: Any, send: Any) -> None:
        await self._answer(send, 200, json.dumps({"data": [], "source": "oracle"}).encode())

    async def _nul_in_answer(self, receive: Any, send: Any) -> None:
        risk = {"risk": "a\u0000b", "category": "c", "context": "d"}
        await self._answer(send, 200, json.dumps({"data": [risk], "source": "model"}).encode())

    async def _oversized(self, receive: Any, send: Any) -> None:
        padding = b" " * (9 * 1024 * 1024)
        await self._answer(send, 200, b'{"data": [], "source": "model"}' + padding)

    async def _redirect(self, receive: Any, send: Any) -> None:
        await self._answer(send, 307, b"", "text/plain", location=f"{self.url}/ok/scan")


@pytest.fixture(scope="session")
def faulty_ai_server() -> Iterator[FaultyAi]:
    peer = FaultyAi()
    with serve_in_thread(peer) as url:
        peer.url = url
        yield peer


@pytest.fixture
def faulty_ai(faulty_ai_server: FaultyAi) -> FaultyAi:
    faulty_ai_server.seen.clear()
    return faulty_ai_server


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting is refused."""
    return processes.closed_port_url()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, demo_ai_url: str) -> Settings:
    return make_settings(
        database_url, tmp_path, AI_SERVICE_URL=demo_ai_url, MAX_UPLOAD_BYTES=str(TEST_MAX_UPLOAD_BYTES)
    )


@pytest.fixture
async def user_id(db: asyncpg.Connection) -> uuid.UUID:
    return await make_user(db, "owner@example.com")


@pytest.fixture
def auth(settings: Settings, user_id: uuid.UUID) -> dict[str, str]:
    return bearer(settings, user_id)


ClientFor = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client_for(database_url: str, tmp_path: Path, db: asyncpg.Connection) -> ClientFor:
    """An app whose AI service is `ai_url`, with a short AI timeout, and a client for it."""

    @asynccontextmanager
    async def open_client(ai_url: str) -> AsyncIterator[httpx.AsyncClient]:
        settings = make_settings(
            database_url,
            tmp_path,
            AI_SERVICE_URL=ai_url,
            AI_SERVICE_TIMEOUT_SECONDS=FAULT_TIMEOUT_SECONDS,
            MAX_UPLOAD_BYTES=str(TEST_MAX_UPLOAD_BYTES),
        )
        async with serving(settings) as http:
            yield http

    return open_client


async def count_scans(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM scans")
    return count


def make_docx(*paragraphs: str) -> bytes:
    """A minimal Word document: the parts a reader of its text needs."""
    namespace = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" for text in paragraphs)
    document = f'<?xml version="1.0"?><w:document xmlns:w="{namespace}"><w:body>{body}</w:body></w:document>'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", document)
    return buffer.getvalue()
