"""Local accounts: registration, password login with lockout, and changes to the caller's own account."""

from __future__ import annotations

import math
import uuid
from typing import NamedTuple

import asyncpg
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, ValidationException
from msgspec import UNSET

from service.accounts import queries
from service.accounts.mail_texts import password_changed_mail
from service.accounts.models import Me, RegisterRequest, UpdateMeRequest
from service.accounts.verification import request_email_change, send_verification
from service.db.pool import RETRYABLE_ERRORS, in_transaction
from service.http.conditional import stale
from service.http.errors import Conflict, TooManyRequests, invalid_field
from service.mail.outbox import enqueue_mail
from service.observability.audit import ActorRef, RequestOrigin, Target, log_event, record_event
from service.security.auth import Caller
from service.security.passwords import PasswordRejected, check_new_password, passwords_for
from service.security.tokens import now_microseconds
from service.sessions.models import Token
from service.sessions.refresh_tokens import (
    lock_user_sessions,
    new_session,
    revoke_other_refresh_families,
    start_session,
)
from service.settings import Settings
from service.two_factor import queries as two_factor_queries
from service.two_factor.models import MfaChallenge
from service.two_factor.secrets import new_mfa_token
from service.users.models import User

MFA_TOKEN_SECONDS = 300

WRONG_CREDENTIALS = "incorrect email or password"
UNVERIFIED_EMAIL = (
    "this account's email address is not verified: follow the link in the verification mail "
    "(a password reset through POST /api/auth/forgot-password also verifies it)"
)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def checked_new_password(settings: Settings, password: str) -> str:
    try:
        check_new_password(settings, password)
    except PasswordRejected as exc:
        raise invalid_field("password", str(exc)) from None
    return password


async def register(
    pool: asyncpg.Pool, settings: Settings, data: RegisterRequest, origin: RequestOrigin
) -> User:
    password_hash = await passwords_for(settings).hash(checked_new_password(settings, data.password))
    email = normalise_email(data.email)
    async with pool.acquire() as connection, connection.transaction():
        user = await queries.insert_user(connection, email, password_hash, data.full_name)
        if user is None:
            raise Conflict("an account with this email already exists")
        await record_event(
            connection,
            "auth.register",
            origin=origin,
            actor=ActorRef(user.id, email),
            target=Target.user(user.id),
        )
        await send_verification(connection, settings, user.id, email)
    return user


async def _count_attempt(pool: asyncpg.Pool, settings: Settings, email: str) -> int:
    """Count a password attempt for `email` before the password is checked; its number within
    the lockout window. 429 when the email is locked: the password is then not checked at all,
    so at most LOGIN_MAX_FAILURES guesses per window are ever evaluated, however many arrive at
    once, on any number of workers and hosts (the count is one atomic upsert in PostgreSQL)."""
    attempt: int = (await _counted_attempt(pool, settings, email))["attempt"]
    return attempt


async def _counted_attempt(pool: asyncpg.Pool, settings: Settings, email: str) -> asyncpg.Record:
    """As _count_attempt; the row also has the local account the email names (all None if none)."""
    counted = await queries.count_password_attempt(
        pool, email, settings.login_max_failures, settings.login_lockout_minutes
    )
    attempt: int = counted["attempt"]
    if attempt > settings.login_max_failures:
        retry_after = max(1, counted["retry_after"])
        minutes = math.ceil(retry_after / 60)
        plural = "s" if minutes > 1 else ""
        raise TooManyRequests(
            f"too many failed password attempts for this email; try again in {minutes} minute{plural}",
            retry_after=retry_after,
        )
    return counted


async def _record_failure(
    pool: asyncpg.Pool,
    settings: Settings,
    email: str,
    user_id: uuid.UUID | None,
    reason: str,
    attempt: int,
    origin: RequestOrigin,
) -> None:
    """Audit a wrong password (already counted by `_count_attempt`), and the lockout it caused."""
    details = {"reason": reason, "failures": attempt}
    async with pool.acquire() as connection, connection.transaction():
        await record_event(
            connection, "auth.login_failed", origin=origin, actor=ActorRef(user_id, email), details=details
        )
        if attempt == settings.login_max_failures:
            await record_event(
                connection,
                "auth.lockout",
                origin=origin,
                actor=ActorRef(user_id, email),
                details={**details, "minutes": settings.login_lockout_minutes},
            )


async def log_in(
    pool: asyncpg.Pool, settings: Settings, login_name: str, password: str, origin: RequestOrigin
) -> Token | MfaChallenge:
    """A new session for a correct email and password; 401 otherwise, 429 while the email is locked.
    With two-factor on, a challenge instead: POST /api/auth/2fa/verify turns it into a session.

    An unknown email costs one argon2 verification like a wrong password, and both answer the
    same 401 and count towards the same lockout, so neither timing nor answer reveals accounts.
    """
    email = normalise_email(login_name)
    passwords = passwords_for(settings)
    counted = await _counted_attempt(pool, settings, email)
    attempt: int = counted["attempt"]
    account = counted if counted["id"] is not None else None
    stored_hash: str | None = account["password_hash"] if account else None
    matches = await passwords.verify(stored_hash, password)
    if account is None or stored_hash is None or not matches:
        reason = "unknown_email" if account is None else "wrong_password"
        account_id = account["id"] if account else None
        await _record_failure(pool, settings, email, account_id, reason, attempt, origin)
        raise NotAuthorizedException(WRONG_CREDENTIALS)
    user_id: uuid.UUID = account["id"]
    if not account["is_active"]:
        details = {"reason": "inactive"}
        await record_event(
            pool, "auth.login_failed", origin=origin, actor=ActorRef(user_id, email), details=details
        )
        raise NotAuthorizedException("account is not active")
    if settings.require_email_verification and not account["email_verified"]:
        details = {"reason": "email_not_verified"}
        await record_event(
            pool, "auth.login_failed", origin=origin, actor=ActorRef(user_id, email), details=details
        )
        raise PermissionDeniedException(UNVERIFIED_EMAIL)
    rehashed = await passwords.hash(password) if passwords.needs_rehash(stored_hash) else None
    if rehashed is None:
        started = await _start_plain_session(pool, settings, user_id, email, stored_hash, origin)
        if started is not None:
            return started

    async def start(connection: asyncpg.Connection) -> Token | MfaChallenge:
        checked = await queries.lock_login_user(connection, user_id, stored_hash)
        if checked is None or not checked["is_active"]:
            raise NotAuthorizedException("account is not active")
        if not checked["same_password"]:  # changed while this attempt was being checked
            raise NotAuthorizedException(WRONG_CREDENTIALS)
        if rehashed is not None:
            await queries.update_password_hash(connection, user_id, rehashed)
        if checked["mfa_enabled"]:
            # The run of failures goes on until a code is accepted too: otherwise someone who
            # knows the password could reset the lockout between code guesses by logging in.
            mfa_token, digest = new_mfa_token()
            await two_factor_queries.insert_challenge(connection, digest, user_id, MFA_TOKEN_SECONDS)
            await record_event(
                connection,
                "auth.mfa_required",
                origin=origin,
                actor=ActorRef(user_id, email),
                target=Target.user(user_id),
            )
            return MfaChallenge(mfa_token=mfa_token, expires_in=MFA_TOKEN_SECONDS)
        # This attempt was within the budget and proved the password: the run of failures ends.
        await queries.clear_login_failures(connection, email)
        token = await start_session(connection, settings, user_id, origin)
        await record_event(
            connection,
            "auth.login",
            origin=origin,
            actor=ActorRef(user_id, email),
            target=Target.user(user_id),
            details={"rehashed": rehashed is not None},
        )
        return token

    return await in_transaction(pool, start)


async def _start_plain_session(
    pool: asyncpg.Pool,
    settings: Settings,
    user_id: uuid.UUID,
    email: str,
    checked_hash: str,
    origin: RequestOrigin,
) -> Token | None:
    """The session of a login whose hash needs no upgrade, in one statement: what `log_in`'s
    transaction does, without its six round trips. A login's CPU besides argon2 is what keeps
    logins/s under argon2's own rate: per login, the event loop's CPU went from 1.9-2.1 to
    1.4-1.6 ms and PostgreSQL's from 1.06-1.12 to 0.77-0.80 ms, logins/s over argon2 alone from
    0.82x to 0.88x (bench/README.md, "Login in two statements"). None when the general path must
    decide: two-factor is on (a challenge), or the statement was a deadlock's victim (the general
    path retries)."""
    session = new_session(settings, user_id)
    details = {"rehashed": False}
    try:
        checked = await queries.start_password_session(
            pool,
            user_id,
            checked_hash,
            email,
            session.refresh_digest,
            session.access_jti,
            origin.user_agent,
            origin.ip,
            settings.refresh_token_expire_days,
            details,
        )
    except RETRYABLE_ERRORS:
        return None
    if checked is None or not checked["is_active"]:
        raise NotAuthorizedException("account is not active")
    if not checked["same_password"]:  # changed while this attempt was being checked
        raise NotAuthorizedException(WRONG_CREDENTIALS)
    if checked["mfa_enabled"]:
        return None
    log_event("auth.login", user_id, str(user_id))
    return session.token


class VersionedUser(NamedTuple):
    user: Me
    version: str  # the users row's xmin: the ETag of /api/auth/me


def _versioned_user(row: asyncpg.Record) -> VersionedUser:
    return VersionedUser(Me(**{name: row[name] for name in Me.__struct_fields__}), row["version"])


async def get_me(db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID) -> VersionedUser:
    row = await queries.get_me(db, user_id)
    if row is None:  # deleted between authentication and this query
        raise NotAuthorizedException("account is not active")
    return _versioned_user(row)


async def update_me(
    pool: asyncpg.Pool,
    settings: Settings,
    caller: Caller,
    changes: UpdateMeRequest,
    origin: RequestOrigin,
    versions: list[str] | None = None,
) -> VersionedUser:
    """Apply a profile change and, when asked, a password change, in one transaction; with
    `versions` (If-Match), only while the account is at one of them, else PreconditionFailed."""
    new_password: _PasswordChange | None = None
    if changes.password is not UNSET:
        if changes.email is not UNSET:
            raise invalid_field("email", "change the email and the password in separate requests")
        new_password = await _verified_password_change(pool, settings, caller, changes, origin)
    new_email: tuple[str, str] | None = None
    if changes.email is not UNSET:
        new_email = await _verified_email_change(pool, settings, caller, changes, origin)
    nothing_to_change = changes.password is UNSET and changes.full_name is UNSET and changes.email is UNSET
    if nothing_to_change and versions is None:
        return await get_me(pool, caller.id)

    async def apply(connection: asyncpg.Connection) -> asyncpg.Record | None:
        if versions is not None:
            current = await queries.lock_me(connection, caller.id)
            if current is not None and current not in versions:
                raise stale()
        if nothing_to_change:
            return await queries.get_me(connection, caller.id)
        if new_password is not None:
            await _change_password(connection, caller, new_password, origin)
        if new_email is not None:
            await request_email_change(connection, settings, caller.id, *new_email, origin)
        full_name_sent = changes.full_name is not UNSET
        full_name = changes.full_name if isinstance(changes.full_name, str) else None
        return await queries.update_profile(connection, caller.id, full_name_sent, full_name)

    row = await in_transaction(pool, apply)
    if row is None:
        raise NotAuthorizedException("account is not active")
    return _versioned_user(row)


class _PasswordChange(NamedTuple):
    email: str  # normalised: the key of the attempt counter
    old_hash: str  # the hash the current password matched
    new_hash: str


async def _change_password(
    connection: asyncpg.Connection, caller: Caller, change: _PasswordChange, origin: RequestOrigin
) -> None:
    # The sessions lock comes first, and the instant that ends older access tokens is read after
    # it: a refresh that was in flight has then committed, so its access token is older too.
    await lock_user_sessions(connection, caller.id)
    if not await queries.change_password(
        connection, caller.id, change.old_hash, change.new_hash, now_microseconds()
    ):
        raise Conflict("the password was changed meanwhile; log in again")
    await queries.clear_login_failures(connection, change.email)
    await revoke_other_refresh_families(connection, caller)
    await enqueue_mail(connection, password_changed_mail(change.email))
    await record_event(
        connection, "auth.password_changed", origin=origin, actor=caller, target=Target.user(caller.id)
    )


async def _verified_password_change(
    pool: asyncpg.Pool, settings: Settings, caller: Caller, changes: UpdateMeRequest, origin: RequestOrigin
) -> _PasswordChange:
    """The change to make, after every check.

    A current-password check is counted before it is made, on the same counter as logins for
    the account's email: a stolen access token gets no more guesses than the login form does.
    """
    assert isinstance(changes.password, str)
    new_password = checked_new_password(settings, changes.password)
    if not isinstance(changes.current_password, str):
        raise invalid_field("current_password", "required to change the password")
    account = await queries.get_password_hash(pool, caller.id)
    if account is None or account["password_hash"] is None:
        raise ValidationException(f"this account signs in through {caller.provider} and has no password here")
    email = normalise_email(account["email"])
    attempt = await _count_attempt(pool, settings, email)
    passwords = passwords_for(settings)
    if not await passwords.verify(account["password_hash"], changes.current_password):
        await _record_failure(pool, settings, email, caller.id, "wrong_current_password", attempt, origin)
        raise invalid_field("current_password", "the current password is incorrect")
    return _PasswordChange(email, account["password_hash"], await passwords.hash(new_password))


async def _verified_email_change(
    pool: asyncpg.Pool, settings: Settings, caller: Caller, changes: UpdateMeRequest, origin: RequestOrigin
) -> tuple[str, str] | None:
    """(old address, new address) after every check; None when the address stays the same. The
    current password is counted and checked as for a password change."""
    assert isinstance(changes.email, str)
    if settings.account_mail != "on":
        raise invalid_field(
            "email", "changing the email address needs mail, which is off here (ACCOUNT_MAIL)"
        )
    if not isinstance(changes.current_password, str):
        raise invalid_field("email", "a new email address needs current_password")
    account = await queries.get_password_hash(pool, caller.id)
    if account is None or account["password_hash"] is None:
        raise ValidationException(
            f"this account signs in through {caller.provider}; change the address there"
        )
    old_email = normalise_email(account["email"])
    new_email = normalise_email(changes.email)
    attempt = await _count_attempt(pool, settings, old_email)
    if not await passwords_for(settings).verify(account["password_hash"], changes.current_password):
        await _record_failure(pool, settings, old_email, caller.id, "wrong_current_password", attempt, origin)
        raise invalid_field("current_password", "the current password is incorrect")
    if new_email == old_email:
        return None
    if await queries.find_local_email(pool, new_email, caller.id):
        raise Conflict("an account with this email already exists")
    return old_email, new_email


async def check_current_password(
    pool: asyncpg.Pool, settings: Settings, caller: Caller, password: str, origin: RequestOrigin
) -> str:
    """Prove the caller knows the account's password (before enrolling two-factor, turning it off,
    deleting the account), counted on the login lockout like PATCH /me's current_password; the
    account's normalised email. 400 when it is wrong, 429 while the email is locked."""
    account = await queries.get_password_hash(pool, caller.id)
    if account is None:
        raise NotAuthorizedException("account is not active")
    if account["password_hash"] is None:
        raise ValidationException(f"this account signs in through {caller.provider} and has no password here")
    email = normalise_email(account["email"])
    attempt = await _count_attempt(pool, settings, email)
    if not await passwords_for(settings).verify(account["password_hash"], password):
        await _record_failure(pool, settings, email, caller.id, "wrong_current_password", attempt, origin)
        raise invalid_field("current_password", "the current password is incorrect")
    await queries.clear_login_failures(pool, email)
    return email


async def count_code_attempt(pool: asyncpg.Pool, settings: Settings, email: str) -> int:
    """Count a two-factor code attempt on the account's login lockout, before the code is checked."""
    return await _count_attempt(pool, settings, normalise_email(email))


async def record_code_failure(
    pool: asyncpg.Pool,
    settings: Settings,
    email: str,
    user_id: uuid.UUID,
    attempt: int,
    origin: RequestOrigin,
) -> None:
    """Audit a wrong two-factor code (mfa.verify_failed), and the lockout it caused."""
    details = {"failures": attempt}
    actor = ActorRef(user_id, email)
    async with pool.acquire() as connection, connection.transaction():
        await record_event(
            connection,
            "mfa.verify_failed",
            origin=origin,
            actor=actor,
            target=Target.user(user_id),
            details=details,
        )
        if attempt == settings.login_max_failures:
            await record_event(
                connection,
                "auth.lockout",
                origin=origin,
                actor=actor,
                details={**details, "reason": "wrong_code", "minutes": settings.login_lockout_minutes},
            )


async def clear_failures(connection: asyncpg.Connection | asyncpg.Pool, email: str) -> None:
    await queries.clear_login_failures(connection, normalise_email(email))
