"""An SMTP outage delays mail and never loses it; a mail that keeps failing is kept as dead."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.mail import delivery, worker
from service.mail.delivery import retry_delay
from tests.accounts.conftest import register
from tests.conftest import bearer, caught_up_first, make_user, running
from tests.mail.conftest import Inbox, mail_settings

ADA = "ada@example.com"


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries 0.2 s apart, noticed within 0.2 s, instead of 2 s doubling, noticed within the
    worker's 5 s poll: the outage is under test here, not the schedule
    (`test_retries_back_off_from_two_seconds_to_ten_minutes` checks that)."""
    monkeypatch.setattr(delivery, "FIRST_RETRY_SECONDS", 0.2)
    monkeypatch.setattr(worker, "DEQUEUE_TIMEOUT", timedelta(seconds=0.2))


def test_retries_back_off_from_two_seconds_to_ten_minutes() -> None:
    assert delivery.FIRST_RETRY_SECONDS == 2.0
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 9, 10, 30)] == [2, 4, 8, 512, 600, 600]


async def _until(db: asyncpg.Connection, query: str, timeout: float = 30) -> asyncpg.Record:
    deadline = time.monotonic() + timeout
    while (row := await db.fetchrow(query)) is None:
        assert time.monotonic() < deadline, f"never true: {query}"
        await asyncio.sleep(0.05)
    return row


async def test_registration_during_an_smtp_outage_answers_at_once_and_mails_later(
    quick_retries: None,  # first: before mail_client starts the app and its worker
    mail_client: httpx.AsyncClient,
    inbox: Inbox,
    db: asyncpg.Connection,
) -> None:
    inbox.stop()
    assert (await register(mail_client, ADA)).status_code == 201
    failed = await _until(db, "SELECT attempts, last_error FROM mail_messages WHERE attempts >= 1")
    assert "Connect" in failed["last_error"] or "refused" in failed["last_error"].lower()
    assert await db.fetchval("SELECT status FROM mail_messages") == "pending"
    inbox.start()
    [mail] = await inbox.wait_for(ADA, "Confirm your email address", timeout=60)
    assert "/verify-email?token=" in mail.text
    sent = await _until(db, "SELECT attempts FROM mail_messages WHERE status = 'sent'")
    assert sent["attempts"] >= 2


async def test_a_mail_that_keeps_failing_is_dead_counted_and_shown_to_admins(
    quick_retries: None, database_url: str, tmp_path: Path, inbox: Inbox, db: asyncpg.Connection
) -> None:
    inbox.stop()
    settings = mail_settings(database_url, tmp_path, inbox, MAIL_MAX_ATTEMPTS="2")
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", event_hooks=caught_up_first(app)
        ) as client:
            assert (await register(client, ADA)).status_code == 201
            await _until(db, "SELECT 1 FROM mail_messages WHERE status = 'dead'")
            admin = bearer(settings, await make_user(db, role="admin"))
            page = (await client.get("/api/admin/mail", params={"status": "dead"}, headers=admin)).json()
            [dead] = page["items"]
            assert page["total"] == 1
            assert dead["recipient"] == ADA
            assert dead["kind"] == "verify_email"
            assert dead["attempts"] == 2
            assert dead["last_error"]
            assert "text_body" not in dead
            assert (await client.get("/api/admin/mail", params={"status": "sent"}, headers=admin)).json()[
                "items"
            ] == []
            user = bearer(settings, await make_user(db))
            assert (await client.get("/api/admin/mail", headers=user)).status_code == 403
            metrics = (await client.get("/metrics")).text
            assert 'mail_messages{status="dead"} 1.0' in metrics
            assert 'mail_delivery_attempts_total{outcome="dead"}' in metrics
