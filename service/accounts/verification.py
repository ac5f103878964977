"""Email verification: a link mailed at registration (and on request), spent once to prove the address."""

from __future__ import annotations

import uuid

import asyncpg
from litestar.exceptions import ValidationException

from service.accounts import queries
from service.accounts.link_tokens import count_mail, issue_token, token_digest
from service.accounts.mail_texts import email_change_mail, email_change_notice, verification_mail
from service.http.errors import Conflict, TooManyRequests, invalid_field
from service.mail.outbox import enqueue_mail
from service.observability.audit import ActorRef, RequestOrigin, Target, record_event
from service.security.auth import Caller
from service.settings import Settings
from service.users.models import User

# Verification mails sent on request (resend) to one address per hour.
VERIFICATION_MAILS_PER_HOUR = 3
INVALID_LINK = "the token of this verification link is invalid, already used or expired; ask for a new one"


async def send_verification(
    connection: asyncpg.Connection, settings: Settings, user_id: uuid.UUID, email: str
) -> None:
    """A verification link to `email`, committed with the caller's transaction (registration,
    whose `auth.register` event stands for it)."""
    if settings.account_mail != "on":
        return
    token = await issue_token(connection, user_id, "verify_email", email)
    await enqueue_mail(connection, verification_mail(settings, email, token))


async def verify_email(pool: asyncpg.Pool, token: str, origin: RequestOrigin) -> User:
    """Prove the account's address, or, for a link sent to a new address, move the account to it."""
    async with pool.acquire() as connection, connection.transaction():
        spent = await queries.use_verification_token(connection, token_digest(token))
        if spent is None:
            raise invalid_field("token", INVALID_LINK)
        changing = spent["purpose"] == "change_email"
        try:
            apply = queries.change_email if changing else queries.mark_email_verified
            user = await apply(connection, spent["user_id"], spent["email"])
        except asyncpg.UniqueViolationError:
            raise Conflict("another account uses this email address now") from None
        if user is None:  # the account changed its address, or was deactivated, since the mail
            raise invalid_field("token", INVALID_LINK)
        await record_event(
            connection,
            "auth.email_changed" if changing else "auth.email_verified",
            origin=origin,
            actor=ActorRef(user.id, user.email),
            target=Target.user(user.id),
        )
    return user


async def request_email_change(
    connection: asyncpg.Connection,
    settings: Settings,
    user_id: uuid.UUID,
    old_email: str,
    new_email: str,
    origin: RequestOrigin,
) -> None:
    """A link to the new address (the change applies when it is followed) and a notice to the old
    one, in the caller's transaction."""
    token = await issue_token(connection, user_id, "change_email", new_email)
    await enqueue_mail(connection, email_change_mail(settings, new_email, token))
    await enqueue_mail(connection, email_change_notice(old_email, new_email))
    await record_event(
        connection,
        "auth.email_change_requested",
        origin=origin,
        actor=ActorRef(user_id, old_email),
        target=Target.user(user_id),
        details={"new_email": new_email},
    )


async def resend_verification(
    pool: asyncpg.Pool, settings: Settings, caller: Caller, origin: RequestOrigin
) -> None:
    """A new link to the caller's address; nothing when it is verified already. 429 past
    VERIFICATION_MAILS_PER_HOUR for the address."""
    target = await queries.get_verification_target(pool, caller.id)
    if target is None or not target["is_active"]:
        raise ValidationException("account is not active")
    if target["provider"] != "local" or not target["email"]:
        raise ValidationException(
            f"this account signs in through {target['provider']}, which verifies its address"
        )
    if target["email_verified"] or settings.account_mail != "on":
        return
    email: str = target["email"]
    sent, retry_after = await count_mail(pool, "verify_email", email)
    if sent > VERIFICATION_MAILS_PER_HOUR:
        raise TooManyRequests(
            f"at most {VERIFICATION_MAILS_PER_HOUR} verification mails an hour; try again later",
            retry_after=retry_after,
        )
    async with pool.acquire() as connection, connection.transaction():
        await send_verification(connection, settings, caller.id, email)
        await record_event(
            connection,
            "auth.verification_resent",
            origin=origin,
            actor=ActorRef(caller.id, email),
            target=Target.user(caller.id),
        )
