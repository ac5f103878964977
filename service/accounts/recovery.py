"""Password reset: a request that answers the same for every address, a link by mail, and a
single-use token that sets a new password and ends every session of the account.

The request only enqueues a job (service.mail.worker runs `request_reset_job`): the lookup of
the account, the per-address cap and the mail happen off the request path, so the answer and
its timing are the same for a known and an unknown address.
"""

from __future__ import annotations

import logging

import asyncpg
import msgspec
from litestar.exceptions import ValidationException
from pgqueuer.domain.models import Job

from service.accounts import queries
from service.accounts.credentials import checked_new_password, normalise_email
from service.accounts.link_tokens import (
    count_mail,
    issue_token,
    token_digest,
)
from service.accounts.mail_texts import password_changed_mail, reset_mail
from service.db.pool import in_transaction
from service.http.errors import invalid_field
from service.mail.outbox import enqueue_job, enqueue_mail
from service.observability.audit import ActorRef, RequestOrigin, Target, record_event
from service.security.passwords import passwords_for
from service.security.tokens import now_microseconds
from service.sessions import queries as sessions_queries
from service.sessions.refresh_tokens import lock_user_sessions
from service.settings import Settings

RESET_REQUEST_JOB = "password_reset_request"
# Reset mails one address is sent per hour, however many requests name it.
RESET_MAILS_PER_HOUR = 3
INVALID_LINK = "the token of this reset link is invalid, already used or expired; ask for a new one"

log = logging.getLogger("service.accounts.recovery")


class ResetRequest(msgspec.Struct, frozen=True):
    email: str
    origin: RequestOrigin


async def request_reset(pool: asyncpg.Pool, email: str, origin: RequestOrigin) -> None:
    """Enqueue the request; nothing here depends on whether the address has an account."""
    payload = msgspec.json.encode(ResetRequest(normalise_email(email), origin))
    async with pool.acquire() as connection, connection.transaction():
        await enqueue_job(connection, RESET_REQUEST_JOB, payload)


class ResetRequests:
    """The `password_reset_request` job: a reset link to the account, if there is one and the
    address is under its hourly cap."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    async def __call__(self, job: Job) -> None:
        request = msgspec.json.decode(job.payload or b"{}", type=ResetRequest)
        account = await queries.find_reset_account(self.pool, request.email)
        if account is None or self.settings.account_mail != "on":
            await record_event(
                self.pool,
                "auth.password_reset_requested",
                origin=request.origin,
                actor=ActorRef(None, request.email),
                details={"sent": False, "reason": "no_account" if account is None else "mail_off"},
            )
            return
        sent, _ = await count_mail(self.pool, "reset_password", request.email)
        if sent > RESET_MAILS_PER_HOUR:
            await record_event(
                self.pool,
                "auth.password_reset_requested",
                origin=request.origin,
                actor=ActorRef(account["id"], request.email),
                details={"sent": False, "reason": "hourly_cap"},
            )
            return
        async with self.pool.acquire() as connection, connection.transaction():
            token = await issue_token(connection, account["id"], "reset_password", account["email"])
            await enqueue_mail(connection, reset_mail(self.settings, account["email"], token))
            await record_event(
                connection,
                "auth.password_reset_requested",
                origin=request.origin,
                actor=ActorRef(account["id"], request.email),
                target=Target.user(account["id"]),
                details={"sent": True},
            )


async def reset_password(
    pool: asyncpg.Pool, settings: Settings, token: str, password: str, origin: RequestOrigin
) -> None:
    """Spend the token, set the password, end every session and access token of the account,
    clear its login lockout, and mail a notice; all in one transaction. 400 for a spent,
    expired or unknown token: of any number of concurrent uses, one succeeds."""
    new_hash = await passwords_for(settings).hash(checked_new_password(settings, password))
    digest = token_digest(token)
    access_seconds = settings.access_token_expire_minutes * 60

    async def apply(connection: asyncpg.Connection) -> None:
        user_id = await queries.find_account_token(connection, digest, "reset_password")
        if user_id is None:
            raise invalid_field("token", INVALID_LINK)
        # The sessions lock first (docs/reliability.md), then the single-use update.
        await lock_user_sessions(connection, user_id)
        spent = await queries.use_account_token(connection, digest, "reset_password")
        if spent is None:
            raise invalid_field("token", INVALID_LINK)
        email = await queries.reset_password(
            connection, user_id, new_hash, now_microseconds(), spent["email"]
        )
        if email is None:
            raise ValidationException("account is not active")
        await queries.clear_login_failures(connection, normalise_email(email))
        ended = await sessions_queries.end_sessions(connection, user_id, None, None, access_seconds)
        await queries.spend_account_tokens(connection, user_id, "reset_password")
        await enqueue_mail(connection, password_changed_mail(email))
        await record_event(
            connection,
            "auth.password_reset",
            origin=origin,
            actor=ActorRef(user_id, email),
            target=Target.user(user_id),
            details={"sessions_ended": len(ended)},
        )

    await in_transaction(pool, apply)
