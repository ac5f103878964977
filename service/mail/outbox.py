"""The outbox: a mail is written, with the job that delivers it, in the caller's transaction.

The job row and the mail row commit or roll back with the change that caused them
(docs/mail.md). A crash after the commit leaves both in the database for the next worker; nothing
is sent for a change that rolled back.

The job is written with sql/mail/enqueue_job.sql rather than pgqueuer's `Queries.enqueue`, which
works on any asyncpg connection too but passes its headers as JSON text to a jsonb[] parameter:
our pool's jsonb codec (service.db) would encode that text a second time, and the worker would
then refuse the job. The row is the one pgqueuer writes (tests/mail run it through pgqueuer).
"""

from __future__ import annotations

import uuid

import asyncpg

from service.mail import queries
from service.mail.models import Mail

DELIVER_MAIL = "deliver_mail"


async def enqueue_job(connection: asyncpg.Connection, entrypoint: str, payload: bytes) -> None:
    """A background job, committed with the caller's transaction (service.mail.worker runs it)."""
    await queries.enqueue_job(connection, entrypoint, payload)


async def enqueue_mail(connection: asyncpg.Connection, mail: Mail) -> uuid.UUID:
    """Record `mail` and its delivery job on `connection`: pass the transaction's connection."""
    message_id = await queries.insert_message(
        connection, mail.kind, mail.recipient, mail.subject, mail.text, mail.html
    )
    await enqueue_job(connection, DELIVER_MAIL, message_id.bytes)
    return message_id
