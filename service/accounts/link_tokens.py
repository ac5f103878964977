"""One-time tokens for links in mails: 256 random bits, shown once (in the mail), stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Literal

import asyncpg

from service.accounts import queries

Purpose = Literal["verify_email", "change_email", "reset_password"]
TOKEN_BYTES = 32
LIFETIME_SECONDS: dict[Purpose, int] = {
    "verify_email": 24 * 3600,
    "change_email": 24 * 3600,
    "reset_password": 3600,
}
MAIL_WINDOW_SECONDS = 3600


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


async def issue_token(
    connection: asyncpg.Connection, user_id: uuid.UUID, purpose: Purpose, email: str
) -> str:
    """A new token for a link to `email`; inside the transaction that also enqueues the mail."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    await queries.insert_account_token(
        connection, token_digest(token), user_id, purpose, email, LIFETIME_SECONDS[purpose]
    )
    return token


async def count_mail(
    pool: asyncpg.Pool | asyncpg.Connection, purpose: Purpose, email: str
) -> tuple[int, int]:
    """(this mail's number for `email` in the current hour, seconds until the hour ends); committed
    on its own, before anything is sent, so a burst on any number of workers counts exactly."""
    row = await queries.count_account_mail(pool, purpose, email.lower(), MAIL_WINDOW_SECONDS)
    return int(row["sent"]), int(row["retry_after"])
