"""Email verification over a real SMTP server: the link in the mail is followed as a frontend would."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import unquote

import asyncpg
import httpx

from service.app import create_app
from tests.accounts.conftest import STRONG_PASSWORD, auth, login, register
from tests.conftest import bearer, caught_up_first, running
from tests.mail.conftest import Inbox, jobs_done, mail_settings

ADA = "ada@example.com"
CONFIRM = "Confirm your email address"


async def test_registration_mails_a_link_that_verifies_the_address_once(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    assert (await register(mail_client, ADA)).status_code == 201
    [mail] = await inbox.wait_for(ADA, CONFIRM)
    url, page, token = mail.link()
    assert url.startswith("http://app.example.test/verify-email?token=")
    assert page == "verify-email"
    assert len(unquote(token)) >= 43
    assert url in mail.html  # the HTML part carries the same link
    assert mail.message["From"] == "no-reply@localhost"
    # Only the digest is stored; the delivered mail's bodies are no longer kept. The SMTP server
    # has the mail a moment before the worker records the delivery: wait for the worker.
    stored = await db.fetchval("SELECT token_hash FROM account_tokens")
    assert stored == hashlib.sha256(unquote(token).encode()).digest()
    await jobs_done(db)
    assert await db.fetchval("SELECT text_body FROM mail_messages WHERE status = 'sent'") == ""

    session = (await login(mail_client, ADA)).json()
    me = await mail_client.get("/api/auth/me", headers=auth(session["access_token"]))
    assert me.json()["email_verified"] is False

    verified = await mail_client.post("/api/auth/verify-email", json={"token": unquote(token)})
    assert verified.status_code == 200, verified.text
    assert verified.json()["email_verified"] is True
    me = await mail_client.get("/api/auth/me", headers=auth(session["access_token"]))
    assert me.json()["email_verified"] is True

    again = await mail_client.post("/api/auth/verify-email", json={"token": unquote(token)})
    assert again.status_code == 400
    assert "used or expired" in again.json()["detail"]
    actions = await db.fetch("SELECT action FROM audit_events ORDER BY id")
    assert "auth.email_verified" in [row["action"] for row in actions]


async def test_an_expired_or_unknown_token_is_refused(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    assert (await register(mail_client, ADA)).status_code == 201
    [mail] = await inbox.wait_for(ADA, CONFIRM)
    token = unquote(mail.link()[2])
    await db.execute("UPDATE account_tokens SET expires_at = now() - interval '1 second'")
    expired = await mail_client.post("/api/auth/verify-email", json={"token": token})
    assert expired.status_code == 400
    unknown = await mail_client.post("/api/auth/verify-email", json={"token": "x" * 43})
    assert unknown.status_code == 400
    assert await db.fetchval("SELECT email_verified FROM users") is False


async def test_resend_mails_a_new_link_a_few_times_an_hour(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    assert (await register(mail_client, ADA)).status_code == 201
    session = (await login(mail_client, ADA)).json()
    answers = [
        await mail_client.post("/api/auth/verify-email/resend", headers=auth(session["access_token"]))
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert int(answers[-1].headers["Retry-After"]) > 0
    mails = await inbox.wait_for(ADA, CONFIRM, count=4)  # the registration's and three on request
    newest = unquote(mails[-1].link()[2])
    assert (await mail_client.post("/api/auth/verify-email", json={"token": newest})).status_code == 200
    # Verified: a resend answers 202 and sends nothing.
    assert (
        await mail_client.post("/api/auth/verify-email/resend", headers=auth(session["access_token"]))
    ).status_code == 202


async def test_resend_needs_a_signed_in_local_account(
    mail_client: httpx.AsyncClient, db: asyncpg.Connection, settings: object
) -> None:
    assert (await mail_client.post("/api/auth/verify-email/resend")).status_code == 401


async def test_required_verification_refuses_login_with_a_problem_until_verified(
    database_url: str, tmp_path: Path, inbox: Inbox, db: asyncpg.Connection
) -> None:
    settings = mail_settings(database_url, tmp_path, inbox, REQUIRE_EMAIL_VERIFICATION="true")
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", event_hooks=caught_up_first(app)
        ) as client:
            assert (await register(client, ADA)).status_code == 201
            refused = await login(client, ADA)
            assert refused.status_code == 403
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert "not verified" in refused.json()["detail"]
            wrong = await login(client, ADA, "not the password at all")
            assert wrong.status_code == 401  # the password is checked first: 403 says nothing to a guesser
            [mail] = await inbox.wait_for(ADA, CONFIRM)
            token = unquote(mail.link()[2])
            assert (await client.post("/api/auth/verify-email", json={"token": token})).status_code == 200
            assert (await login(client, ADA, STRONG_PASSWORD)).status_code == 200
            user_id = await db.fetchval("SELECT id FROM users")
            assert (await client.get("/api/auth/me", headers=bearer(settings, user_id))).status_code == 200
