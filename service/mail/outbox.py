"""The outbox: a mail is written, with the job that delivers it, in the caller's transaction.

pgqueuer enqueues through whatever asyncpg connection it is given, so the job row and the mail
row commit or roll back with the change that caused them (docs/mail.md). A crash after the commit
leaves both in the database for the next worker; nothing is sent for a change that rolled back.
"""

from __future__ import annotations

import uuid

import asyncpg
from pgqueuer.adapters.drivers.asyncpg import AsyncpgDriver
from pgqueuer.queries import Queries

from service.db import load_sql
from service.mail.models import Mail

INSERT_MESSAGE = load_sql("mail/insert_message")

DELIVER_MAIL = "deliver_mail"


async def enqueue_job(connection: asyncpg.Connection, entrypoint: str, payload: bytes) -> None:
    """A background job, committed with the caller's transaction (service.mail.worker runs it)."""
    await Queries(AsyncpgDriver(connection)).enqueue(entrypoint, payload)


async def enqueue_mail(connection: asyncpg.Connection, mail: Mail) -> uuid.UUID:
    """Record `mail` and its delivery job on `connection`: pass the transaction's connection."""
    message_id: uuid.UUID = await connection.fetchval(
        INSERT_MESSAGE, mail.kind, mail.recipient, mail.subject, mail.text, mail.html
    )
    await enqueue_job(connection, DELIVER_MAIL, message_id.bytes)
    return message_id
