"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, and the app wired to it."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from litestar import Litestar

from service.app import create_app
from service.settings import Settings
from tests.conftest import caught_up_first, make_settings, running
from tests.processes import free_port

LINK = re.compile(r"(https?://\S+/(verify-email|reset-password)\?token=([A-Za-z0-9_%-]+))")


@dataclass
class Received:
    message: EmailMessage
    at: float  # time.time() when the server accepted it

    @property
    def recipient(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())

    def link(self) -> tuple[str, str, str]:
        """(url, page, token) of the link in the plain-text body."""
        match = LINK.search(self.text)
        assert match, self.text
        return match.group(1), match.group(2), match.group(3)


@dataclass
class Inbox:
    """What the SMTP server received, in order; the server runs in a thread of its own."""

    port: int
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(Received(message, time.time()))
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, recipient: str, subject: str | None = None) -> list[Received]:
        with self.lock:
            return [
                r
                for r in self.received
                if r.recipient == recipient and (subject is None or r.subject == subject)
            ]

    async def wait_for(
        self, recipient: str, subject: str | None = None, count: int = 1, timeout: float = 30
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.to(recipient, subject)
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, (
                f"{count} mail(s) to {recipient} did not arrive: {self.received}"
            )
            await asyncio.sleep(0.05)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(free_port())
    box.start()
    try:
        yield box
    finally:
        box.stop()


def mail_settings(database_url: str, tmp_path: Path, inbox: Inbox, **overrides: str) -> Settings:
    values = {
        "SMTP_URL": f"smtp://127.0.0.1:{inbox.port}",
        "MAIL_WORKER": "on",
        "FRONTEND_URL": "http://app.example.test",
        # Bursts from one test client: the per-address caps are under test, not the per-IP limit.
        "AUTH_RATE_LIMIT_PER_MINUTE": "1000",
    }
    return make_settings(database_url, tmp_path, **{**values, **overrides})


@pytest.fixture
async def mail_app(
    database_url: str, tmp_path: Path, inbox: Inbox, db: asyncpg.Connection
) -> AsyncIterator[Litestar]:
    async with running(create_app(mail_settings(database_url, tmp_path, inbox))) as application:
        yield application


@pytest.fixture
async def mail_client(mail_app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mail_app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks=caught_up_first(mail_app)
    ) as http:
        yield http


async def jobs_done(db: asyncpg.Connection, timeout: float = 30) -> None:
    """Wait until the queue holds no job that is due or running."""
    deadline = time.monotonic() + timeout
    while await db.fetchval("SELECT count(*) FROM pgqueuer WHERE status IN ('queued', 'picked')"):
        assert time.monotonic() < deadline, "jobs still queued"
        await asyncio.sleep(0.05)
