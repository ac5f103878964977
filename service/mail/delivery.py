"""The delivery job: send one outbox mail, record the outcome, retry with backoff, keep the dead."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import asyncpg
from pgqueuer.domain.errors import RetryRequested
from pgqueuer.domain.models import Job
from prometheus_client import Counter, Gauge

from service.mail import queries
from service.mail.transport import DELIVERY_ERRORS, Transport, build_message
from service.settings import Settings

FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 600.0
MAX_ERROR_LENGTH = 1000

log = logging.getLogger("service.mail")

MAIL_DELIVERY_ATTEMPTS = Counter(
    "mail_delivery_attempts",
    "Mail delivery attempts made by this process, by outcome (sent, failed: retried later, dead: given up).",
    ["outcome"],
)
# Read from the database (every worker reads the same rows): max over the workers is the value.
MAIL_MESSAGES = Gauge(
    "mail_messages",
    "Mails in the outbox by status (pending, sent, dead).",
    ["status"],
    multiprocess_mode="max",
)
for _outcome in ("sent", "failed", "dead"):
    MAIL_DELIVERY_ATTEMPTS.labels(_outcome)
for _status in ("pending", "sent", "dead"):
    MAIL_MESSAGES.labels(_status)


def retry_delay(attempts_made: int) -> timedelta:
    """2 s after the first failure, doubling, at most 10 minutes."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** (attempts_made - 1), MAX_RETRY_SECONDS))


async def refresh_mail_gauges(pool: asyncpg.Pool) -> None:
    counts = await queries.count_by_status(pool)
    for status in ("pending", "sent", "dead"):
        MAIL_MESSAGES.labels(status).set(counts.get(status, 0))


class MailDelivery:
    """The `deliver_mail` job handler. At least once: a crash after the send and before the
    mark-as-sent commits sends the mail again; nothing commits a mail as sent before it was."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, transport: Transport) -> None:
        self.pool = pool
        self.settings = settings
        self.transport = transport

    async def __call__(self, job: Job) -> None:
        message_id = uuid.UUID(bytes=job.payload or b"")
        row = await queries.get_pending_message(self.pool, message_id)
        if row is None:  # sent already (picked again after a crash), dead, or deleted with its account
            return
        message = build_message(
            self.settings.mail_from, row["recipient"], row["subject"], row["text_body"], row["html_body"]
        )
        try:
            await self.transport.send(message)
        except DELIVERY_ERRORS as exc:
            await self._failed(message_id, row["attempts"] + 1, exc)
            return
        await queries.mark_sent(self.pool, message_id)
        MAIL_DELIVERY_ATTEMPTS.labels("sent").inc()

    async def _failed(self, message_id: uuid.UUID, attempt: int, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
        dead = attempt >= self.settings.mail_max_attempts
        await queries.record_failed_attempt(self.pool, message_id, error, dead)
        if dead:
            MAIL_DELIVERY_ATTEMPTS.labels("dead").inc()
            log.error("mail %s is dead after %d attempts: %s", message_id, attempt, error)
            await refresh_mail_gauges(self.pool)
            return
        MAIL_DELIVERY_ATTEMPTS.labels("failed").inc()
        delay = retry_delay(attempt)
        log.warning("mail %s: attempt %d failed (%s); next in %s", message_id, attempt, error, delay)
        raise RetryRequested(delay=delay, reason=error)
