"""An SMTP server that accepts the connection and never speaks: each delivery attempt gives up
within SMTP_TIMEOUT_SECONDS (docs/reliability.md, "Every wait has a deadline"), the mail stays
pending and is delivered once a server answers on that port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx

from service.app import create_app
from tests.accounts.conftest import register
from tests.conftest import caught_up_first, running
from tests.mail.conftest import Inbox, mail_settings
from tests.processes import free_port

ADA = "ada@example.com"
TIMEOUT_SECONDS = 1.0
# Scheduling slack on a shared two-core machine, on top of the bound.
MARGIN_SECONDS = 3.0


async def _until(db: asyncpg.Connection, query: str, timeout: float = 30) -> asyncpg.Record:
    deadline = time.monotonic() + timeout
    while (row := await db.fetchrow(query)) is None:
        assert time.monotonic() < deadline, f"never true: {query}"
        await asyncio.sleep(0.02)
    return row


class SilentServer:
    """Accepts TCP connections on loopback and holds them open without a byte (no greeting),
    until `relay_to(port)`: from then on each new connection is relayed to that port."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.accepted_at: list[float] = []
        self.connections: list[socket.socket] = []
        self.relay_port: int | None = None
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def relay_to(self, port: int) -> None:
        self.relay_port = port

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.accepted_at.append(time.monotonic())
            self.connections.append(connection)
            if self.relay_port is not None:
                upstream = socket.create_connection(("127.0.0.1", self.relay_port))
                self.connections.append(upstream)
                for source, target in ((connection, upstream), (upstream, connection)):
                    threading.Thread(target=_pump, args=(source, target), daemon=True).start()

    @contextmanager
    def running(self) -> Iterator[SilentServer]:
        self._thread.start()
        try:
            yield self
        finally:
            self.listener.close()
            self._thread.join(timeout=5)
            for connection in self.connections:
                connection.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


async def test_a_silent_smtp_server_fails_each_attempt_within_the_timeout_and_the_mail_waits(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    silent = SilentServer()
    inbox = Inbox(free_port())
    settings = mail_settings(
        database_url,
        tmp_path,
        inbox,
        SMTP_URL=f"smtp://127.0.0.1:{silent.port}",
        SMTP_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
    )
    try:
        with silent.running():
            async with running(create_app(settings)) as app:
                transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://testserver", event_hooks=caught_up_first(app)
                ) as client:
                    assert (await register(client, ADA)).status_code == 201
                    failed = await _until(
                        db, "SELECT attempts, last_error FROM mail_messages WHERE attempts >= 1"
                    )
                    given_up = time.monotonic()
                    assert silent.accepted_at, "the worker connected to the silent server"
                    took = given_up - silent.accepted_at[0]
                    assert took < TIMEOUT_SECONDS + MARGIN_SECONDS, took
                    assert (
                        "timed out" in failed["last_error"].lower()
                        or "timeout" in failed["last_error"].lower()
                    )
                    assert await db.fetchval("SELECT status FROM mail_messages") == "pending"

                    inbox.start()
                    silent.relay_to(inbox.port)  # the port answers again, through to a real server
                    [mail] = await inbox.wait_for(ADA, "Confirm your email address", timeout=60)
                    assert "/verify-email?token=" in mail.text
                    sent = await _until(db, "SELECT attempts FROM mail_messages WHERE status = 'sent'")
                    assert sent["attempts"] >= 2
    finally:
        inbox.stop()
