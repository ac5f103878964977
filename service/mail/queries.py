"""The mail queries: each runs one file of sql/mail/ (the outbox's messages and the jobs that
deliver them). Writers pass the connection of the transaction the mail commits with."""

from __future__ import annotations

import uuid

import asyncpg

from service.db.sql import load_sql, rows_to
from service.mail.models import MailMessage, MailStatus

INSERT_MESSAGE = load_sql("mail/insert_message")
ENQUEUE_JOB = load_sql("mail/enqueue_job")
GET_PENDING_MESSAGE = load_sql("mail/get_pending_message")
MARK_SENT = load_sql("mail/mark_sent")
RECORD_FAILED_ATTEMPT = load_sql("mail/record_failed_attempt")
COUNT_BY_STATUS = load_sql("mail/count_by_status")
LIST_MESSAGES = load_sql("mail/list_messages")
COUNT_MESSAGES = load_sql("mail/count_messages")


async def enqueue_job(connection: asyncpg.Connection, entrypoint: str, payload: bytes) -> None:
    await connection.execute(ENQUEUE_JOB, entrypoint, payload)


async def insert_message(
    connection: asyncpg.Connection, kind: str, recipient: str, subject: str, text: str, html: str
) -> uuid.UUID:
    message_id: uuid.UUID = await connection.fetchval(INSERT_MESSAGE, kind, recipient, subject, text, html)
    return message_id


async def get_pending_message(pool: asyncpg.Pool, message_id: uuid.UUID) -> asyncpg.Record | None:
    """recipient, subject, text_body, html_body, attempts of a mail still to be sent."""
    return await pool.fetchrow(GET_PENDING_MESSAGE, message_id)


async def mark_sent(pool: asyncpg.Pool, message_id: uuid.UUID) -> None:
    await pool.execute(MARK_SENT, message_id)


async def record_failed_attempt(pool: asyncpg.Pool, message_id: uuid.UUID, error: str, dead: bool) -> None:
    await pool.execute(RECORD_FAILED_ATTEMPT, message_id, error, dead)


async def count_by_status(pool: asyncpg.Pool) -> dict[str, int]:
    return {row["status"]: row["messages"] for row in await pool.fetch(COUNT_BY_STATUS)}


async def list_messages(
    pool: asyncpg.Pool, status: MailStatus | None, limit: int, offset: int
) -> tuple[list[MailMessage], int]:
    """One page, newest first, and how many match over all pages (both read from one snapshot)."""
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = await connection.fetch(LIST_MESSAGES, status, limit, offset)
        total: int = await connection.fetchval(COUNT_MESSAGES, status)
    return rows_to(MailMessage, rows), total
