"""Password reset over a real SMTP server: the link in the mail is followed as a frontend would."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import unquote

import asyncpg
import httpx

from service.app import create_app
from tests.accounts.conftest import OTHER_STRONG_PASSWORD, STRONG_PASSWORD, auth, login, register
from tests.conftest import caught_up_first, running
from tests.mail.conftest import Inbox, jobs_done, mail_settings

ADA = "ada@example.com"
RESET = "Reset your password"
CHANGED = "Your password was changed"
NEW_PASSWORD = "violet tram to the lighthouse 7"


async def _reset_token(client: httpx.AsyncClient, inbox: Inbox, count: int = 1) -> str:
    assert (await client.post("/api/auth/forgot-password", json={"email": ADA})).status_code == 202
    mails = await inbox.wait_for(ADA, RESET, count=count)
    url, page, token = mails[-1].link()
    assert url.startswith("http://app.example.test/reset-password?token=")
    assert page == "reset-password"
    return unquote(token)


async def test_a_reset_link_sets_the_password_and_ends_every_session(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    assert (await register(mail_client, ADA)).status_code == 201
    first = (await login(mail_client, ADA)).json()
    second = (await login(mail_client, ADA)).json()
    # Lock the email out with wrong passwords: the reset lifts the lockout.
    for _ in range(5):
        await login(mail_client, ADA, "wrong password, again")
    assert (await login(mail_client, ADA)).status_code == 429

    token = await _reset_token(mail_client, inbox)
    reset = await mail_client.post(
        "/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
    )
    assert reset.status_code == 204, reset.text

    for session in (first, second):
        me = await mail_client.get("/api/auth/me", headers=auth(session["access_token"]))
        assert me.status_code == 401
        refreshed = await mail_client.post(
            "/api/auth/refresh", json={"refresh_token": session["refresh_token"]}
        )
        assert refreshed.status_code == 401
    assert (await login(mail_client, ADA, STRONG_PASSWORD)).status_code == 401
    assert (await login(mail_client, ADA, NEW_PASSWORD)).status_code == 200

    [notice] = await inbox.wait_for(ADA, CHANGED)
    assert "every session" in notice.text
    assert "<p>" in notice.html
    again = await mail_client.post(
        "/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
    )
    assert again.status_code == 400
    # Following the link proved the address too.
    assert await db.fetchval("SELECT email_verified FROM users") is True
    actions = [row["action"] for row in await db.fetch("SELECT action FROM audit_events ORDER BY id")]
    assert "auth.password_reset_requested" in actions
    assert "auth.password_reset" in actions


async def test_known_and_unknown_emails_get_the_same_answer_and_only_accounts_get_mail(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    assert (await register(mail_client, ADA)).status_code == 201
    known = await mail_client.post("/api/auth/forgot-password", json={"email": "ADA@example.com"})
    unknown = await mail_client.post("/api/auth/forgot-password", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    await inbox.wait_for(ADA, RESET)
    await jobs_done(db)
    assert inbox.to("nobody@example.com") == []

    # About the same time: the request only enqueues a job, whatever the address.
    async def timed(address: str) -> float:
        started = time.perf_counter()
        answer = await mail_client.post("/api/auth/forgot-password", json={"email": address})
        assert answer.status_code == 202
        return time.perf_counter() - started

    known_times = sorted([await timed(ADA) for _ in range(3)])
    unknown_times = sorted([await timed(f"nobody{n}@example.com") for n in range(3)])
    # Not a speed target: the two medians are compared with each other, with a wide margin.
    assert known_times[1] < unknown_times[1] * 3 + 0.05
    assert unknown_times[1] < known_times[1] * 3 + 0.05


async def test_the_reset_password_follows_the_password_policy(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    assert (await register(mail_client, ADA)).status_code == 201
    token = await _reset_token(mail_client, inbox)
    weak = await mail_client.post("/api/auth/reset-password", json={"token": token, "password": "password"})
    assert weak.status_code == 400
    assert weak.json()["detail"]
    # A refused password did not spend the token.
    good = await mail_client.post("/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD})
    assert good.status_code == 204


async def test_an_expired_reset_token_is_refused(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    assert (await register(mail_client, ADA)).status_code == 201
    token = await _reset_token(mail_client, inbox)
    await db.execute(
        "UPDATE account_tokens SET expires_at = now() - interval '1 second' WHERE purpose = 'reset_password'"
    )
    expired = await mail_client.post(
        "/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
    )
    assert expired.status_code == 400
    assert (await login(mail_client, ADA, STRONG_PASSWORD)).status_code == 200


async def test_twenty_concurrent_uses_of_one_token_reset_once(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    assert (await register(mail_client, ADA)).status_code == 201
    token = await _reset_token(mail_client, inbox)
    passwords = [f"{OTHER_STRONG_PASSWORD} {n}" for n in range(20)]
    answers = await asyncio.gather(
        *(
            mail_client.post("/api/auth/reset-password", json={"token": token, "password": password})
            for password in passwords
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [204] + [400] * 19
    winner = passwords[[a.status_code for a in answers].index(204)]
    assert (await login(mail_client, ADA, winner)).status_code == 200
    assert await db.fetchval("SELECT count(*) FROM audit_events WHERE action = 'auth.password_reset'") == 1
    await inbox.wait_for(ADA, CHANGED)
    await jobs_done(db)
    assert len(inbox.to(ADA, CHANGED)) == 1


async def test_a_burst_of_requests_for_one_email_sends_a_few_mails(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    assert (await register(mail_client, ADA)).status_code == 201
    answers = await asyncio.gather(
        *(mail_client.post("/api/auth/forgot-password", json={"email": ADA}) for _ in range(15))
    )
    assert {a.status_code for a in answers} == {202}
    await inbox.wait_for(ADA, RESET, count=3)
    await jobs_done(db)
    assert len(inbox.to(ADA, RESET)) == 3
    capped = await db.fetchval(
        "SELECT count(*) FROM audit_events WHERE action = 'auth.password_reset_requested'"
        " AND details->>'reason' = 'hourly_cap'"
    )
    assert capped == 12


async def test_forgot_and_reset_password_are_rate_limited_per_client_address(
    database_url: str, tmp_path: Path, inbox: Inbox, db: asyncpg.Connection
) -> None:
    settings = mail_settings(database_url, tmp_path, inbox, AUTH_RATE_LIMIT_PER_MINUTE="3")
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", event_hooks=caught_up_first(app)
        ) as client:
            statuses = [
                (
                    await client.post("/api/auth/forgot-password", json={"email": f"n{n}@example.com"})
                ).status_code
                for n in range(4)
            ]
            assert statuses == [202, 202, 202, 429]
            refused = await client.post(
                "/api/auth/reset-password", json={"token": "x", "password": NEW_PASSWORD}
            )
            assert refused.status_code == 429
            assert "Retry-After" in refused.headers
