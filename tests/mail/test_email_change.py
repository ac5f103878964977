"""Changing the email address: a link to the new address, a notice to the old, applied when followed."""

from __future__ import annotations

from urllib.parse import unquote

import asyncpg
import httpx

from tests.accounts.conftest import STRONG_PASSWORD, auth, login, register
from tests.mail.conftest import Inbox

ADA = "ada@example.com"
NEW = "ada.lovelace@example.com"


async def _signed_in(client: httpx.AsyncClient) -> dict[str, str]:
    assert (await register(client, ADA)).status_code == 201
    return auth((await login(client, ADA)).json()["access_token"])


async def test_the_new_address_applies_when_its_link_is_followed(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    headers = await _signed_in(mail_client)
    asked = await mail_client.patch(
        "/api/auth/me", json={"email": NEW.upper(), "current_password": STRONG_PASSWORD}, headers=headers
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["email"] == ADA  # not before the new address is proven

    [notice] = await inbox.wait_for(ADA, "A new email address was requested for your account")
    assert NEW in notice.text
    [confirm] = await inbox.wait_for(NEW, "Confirm your new email address")
    url, _, token = confirm.link()
    assert url.startswith("http://app.example.test/verify-email?token=")

    changed = await mail_client.post("/api/auth/verify-email", json={"token": unquote(token)})
    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == NEW
    assert changed.json()["email_verified"] is True
    assert (await mail_client.get("/api/auth/me", headers=headers)).json()["email"] == NEW
    assert (await login(mail_client, NEW)).status_code == 200
    assert (await login(mail_client, ADA)).status_code == 401
    again = await mail_client.post("/api/auth/verify-email", json={"token": unquote(token)})
    assert again.status_code == 400
    actions = [row["action"] for row in await db.fetch("SELECT action FROM audit_events ORDER BY id")]
    assert "auth.email_change_requested" in actions
    assert "auth.email_changed" in actions


async def test_an_email_change_needs_the_current_password(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    headers = await _signed_in(mail_client)
    missing = await mail_client.patch("/api/auth/me", json={"email": NEW}, headers=headers)
    assert missing.status_code == 400
    assert "current_password" in missing.text
    wrong = await mail_client.patch(
        "/api/auth/me", json={"email": NEW, "current_password": "not it at all"}, headers=headers
    )
    assert wrong.status_code == 400
    assert await db.fetchval("SELECT count(*) FROM account_tokens WHERE purpose = 'change_email'") == 0


async def test_an_address_another_account_holds_is_a_conflict(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: asyncpg.Connection
) -> None:
    headers = await _signed_in(mail_client)
    asked = await mail_client.patch(
        "/api/auth/me", json={"email": NEW, "current_password": STRONG_PASSWORD}, headers=headers
    )
    assert asked.status_code == 200
    [confirm] = await inbox.wait_for(NEW, "Confirm your new email address")
    # Someone registers the new address before the link is followed.
    assert (await register(mail_client, NEW)).status_code == 201
    late = await mail_client.post("/api/auth/verify-email", json={"token": unquote(confirm.link()[2])})
    assert late.status_code == 409
    assert (await mail_client.get("/api/auth/me", headers=headers)).json()["email"] == ADA
    taken = await mail_client.patch(
        "/api/auth/me", json={"email": NEW, "current_password": STRONG_PASSWORD}, headers=headers
    )
    assert taken.status_code == 409
