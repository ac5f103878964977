"""Mail across real `service serve` processes: a SIGKILL after the commit loses no mail, and two
hosts on one database deliver each mail once."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import asyncpg
import httpx

from tests.accounts.conftest import STRONG_PASSWORD
from tests.mail.conftest import Inbox, jobs_done
from tests.processes import serve

CONFIRM = "Confirm your email address"


def _mail_env(inbox: Inbox) -> dict[str, str]:
    return {
        "SMTP_URL": f"smtp://127.0.0.1:{inbox.port}",
        "MAIL_WORKER": "on",
        "FRONTEND_URL": "http://app.example.test",
    }


async def test_a_mail_committed_before_a_sigkill_is_delivered_after_restart(
    database_url: str, tmp_path: Path, inbox: Inbox, db: asyncpg.Connection
) -> None:
    email = f"kill-{uuid.uuid4().hex[:8]}@example.com"
    # SMTP is down, so the mail cannot leave before the kill; the registration still answers.
    inbox.stop()
    with serve(database_url, tmp_path, **_mail_env(inbox)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            registered = await client.post(
                "/api/auth/register", json={"email": email, "password": STRONG_PASSWORD}
            )
            assert registered.status_code == 201
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
    assert await db.fetchval("SELECT status FROM mail_messages WHERE recipient = $1", email) == "pending"
    inbox.start()
    with serve(database_url, tmp_path, **_mail_env(inbox)):
        [mail] = await inbox.wait_for(email, CONFIRM, timeout=90)
        assert "/verify-email?token=" in mail.text


async def test_two_hosts_on_one_database_deliver_each_mail_once(
    database_url: str, tmp_path: Path, inbox: Inbox, db: asyncpg.Connection
) -> None:
    emails = [f"twin-{n}-{uuid.uuid4().hex[:6]}@example.com" for n in range(20)]
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    with (
        serve(database_url, first_dir, "--workers", "2", **_mail_env(inbox)) as first,
        serve(database_url, second_dir, **_mail_env(inbox)) as second,
    ):
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=60) as a,
            httpx.AsyncClient(base_url=second.url, timeout=60) as b,
        ):
            answers = await asyncio.gather(
                *(
                    (a if n % 2 else b).post(
                        "/api/auth/register", json={"email": e, "password": STRONG_PASSWORD}
                    )
                    for n, e in enumerate(emails)
                )
            )
        assert {r.status_code for r in answers} == {201}
        for email in emails:
            await inbox.wait_for(email, CONFIRM, timeout=60)
        await jobs_done(db)
        await asyncio.sleep(1)  # a duplicate would be on its way by now
        assert sorted(len(inbox.to(email)) for email in emails) == [1] * 20
