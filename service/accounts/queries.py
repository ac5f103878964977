"""The account queries: each runs one file of sql/accounts/ (local credentials, the login
lockout's counter, link tokens, the caller's own data). The business rules, the transactions and
the audit events are in credentials.py, recovery.py, verification.py, own_data.py and cookies.py,
which call these; a function here takes the connection (or pool) it runs on."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import TypeAlias

import asyncpg

from service.accounts.models import ExportedAuditEvent, ExportedIdentity, ExportedTask, ExportedTwoFactor
from service.db.sql import load_sql, row_to, rows_to
from service.scans.models import Scan
from service.users.models import User

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection

INSERT_USER = load_sql("accounts/insert_user")
GET_PASSWORD_HASH = load_sql("accounts/get_password_hash")
UPDATE_PASSWORD_HASH = load_sql("accounts/update_password_hash")
CHANGE_PASSWORD = load_sql("accounts/change_password")
UPDATE_PROFILE = load_sql("accounts/update_profile")
GET_ME = load_sql("accounts/get_me")
LOCK_ME = load_sql("accounts/lock_me")
COUNT_PASSWORD_ATTEMPT = load_sql("accounts/count_password_attempt")
CLEAR_LOGIN_FAILURES = load_sql("accounts/clear_login_failures")
LOCK_LOGIN_USER = load_sql("accounts/lock_login_user")
START_PASSWORD_SESSION = load_sql("accounts/start_password_session")
FIND_LOCAL_EMAIL = load_sql("accounts/find_local_email")
GET_CALLER = load_sql("accounts/get_caller")
GET_REFRESH_EXPIRY = load_sql("accounts/get_refresh_expiry")
INSERT_ACCOUNT_TOKEN = load_sql("accounts/insert_account_token")
USE_ACCOUNT_TOKEN = load_sql("accounts/use_account_token")
FIND_ACCOUNT_TOKEN = load_sql("accounts/find_account_token")
SPEND_ACCOUNT_TOKENS = load_sql("accounts/spend_account_tokens")
COUNT_ACCOUNT_MAIL = load_sql("accounts/count_account_mail")
FIND_RESET_ACCOUNT = load_sql("accounts/find_reset_account")
RESET_PASSWORD = load_sql("accounts/reset_password")
MARK_EMAIL_VERIFIED = load_sql("accounts/mark_email_verified")
GET_VERIFICATION_TARGET = load_sql("accounts/get_verification_target")
USE_VERIFICATION_TOKEN = load_sql("accounts/use_verification_token")
CHANGE_EMAIL = load_sql("accounts/change_email")
EXPORT_IDENTITIES = load_sql("accounts/export_identities")
EXPORT_TASKS = load_sql("accounts/export_tasks")
EXPORT_SCANS = load_sql("accounts/export_scans")
EXPORT_AUDIT_EVENTS = load_sql("accounts/export_audit_events")
EXPORT_TWO_FACTOR = load_sql("accounts/export_two_factor")
SCRUB_AUDIT_ACTOR = load_sql("accounts/scrub_audit_actor")
DELETE_LOGIN_FAILURES = load_sql("accounts/delete_login_failures")
DELETE_ACCOUNT_MAIL = load_sql("accounts/delete_account_mail")


# Local accounts and their passwords.


async def insert_user(
    connection: asyncpg.Connection, email: str, password_hash: str, full_name: str | None
) -> User | None:
    """The new local account; None when one with this email exists."""
    row = await connection.fetchrow(INSERT_USER, email, password_hash, full_name)
    return None if row is None else row_to(User, row)


async def lock_login_user(
    connection: asyncpg.Connection, user_id: uuid.UUID, checked_hash: str
) -> asyncpg.Record | None:
    """Lock the user's row: is_active, mfa_enabled, and same_password (still `checked_hash`)."""
    return await connection.fetchrow(LOCK_LOGIN_USER, user_id, checked_hash)


async def start_password_session(
    pool: asyncpg.Pool,
    user_id: uuid.UUID,
    checked_hash: str,
    email: str,
    refresh_digest: bytes,
    access_jti: uuid.UUID,
    user_agent: str | None,
    ip: str | None,
    lifetime_days: int,
    details: Mapping[str, object],
) -> asyncpg.Record | None:
    """In one statement: lock the user, and unless it is inactive, has another password now or
    has two-factor on, end its run of failures, start a refresh family and audit the login.
    is_active, same_password, mfa_enabled as lock_login_user; None: no such user."""
    return await pool.fetchrow(
        START_PASSWORD_SESSION,
        user_id,
        checked_hash,
        email,
        refresh_digest,
        access_jti,
        user_agent,
        ip,
        lifetime_days,
        details,
    )


async def update_password_hash(
    connection: asyncpg.Connection, user_id: uuid.UUID, password_hash: str
) -> None:
    await connection.execute(UPDATE_PASSWORD_HASH, user_id, password_hash)


async def get_password_hash(db: Db, user_id: uuid.UUID) -> asyncpg.Record | None:
    """email and password_hash (None for an identity provider's account)."""
    return await db.fetchrow(GET_PASSWORD_HASH, user_id)


async def change_password(
    connection: asyncpg.Connection, user_id: uuid.UUID, old_hash: str, new_hash: str, tokens_valid_after: int
) -> bool:
    """Replace the password while it is still `old_hash`; False when it changed meanwhile."""
    status = await connection.execute(CHANGE_PASSWORD, user_id, old_hash, new_hash, tokens_valid_after)
    return bool(status == "UPDATE 1")


async def find_local_email(db: Db, email: str, other_than: uuid.UUID) -> bool:
    """Whether another local account has this email."""
    return bool(await db.fetchval(FIND_LOCAL_EMAIL, email, other_than))


# The login lockout's counter.


async def count_password_attempt(
    pool: asyncpg.Pool, email: str, max_failures: int, lockout_minutes: int
) -> asyncpg.Record:
    """Count one attempt atomically: the attempt's number and, past the limit, retry_after; and
    id, password_hash, is_active, email_verified of the local account with this email (None when
    there is none). A pool only, never a connection in a transaction: the statement turns off
    the wait for the WAL flush for the transaction it runs in (count_password_attempt.sql)."""
    row: asyncpg.Record = await pool.fetchrow(COUNT_PASSWORD_ATTEMPT, email, max_failures, lockout_minutes)
    return row


async def clear_login_failures(db: Db, email: str) -> None:
    await db.execute(CLEAR_LOGIN_FAILURES, email)


# /api/auth/me and the caller.


async def get_me(db: Db, user_id: uuid.UUID) -> asyncpg.Record | None:
    """The Me fields and the row's version (xmin)."""
    return await db.fetchrow(GET_ME, user_id)


async def lock_me(connection: asyncpg.Connection, user_id: uuid.UUID) -> str | None:
    """Lock the user's row; its version (xmin)."""
    version: str | None = await connection.fetchval(LOCK_ME, user_id)
    return version


async def update_profile(
    connection: asyncpg.Connection, user_id: uuid.UUID, full_name_sent: bool, full_name: str | None
) -> asyncpg.Record | None:
    """The Me fields and version after the change; None for an inactive or deleted account."""
    return await connection.fetchrow(UPDATE_PROFILE, user_id, full_name_sent, full_name)


async def get_caller(db: Db, user_id: uuid.UUID, jti: uuid.UUID | None) -> asyncpg.Record | None:
    """The user behind a token and whether the token (`jti`) is revoked, in one query."""
    return await db.fetchrow(GET_CALLER, user_id, jti)


async def get_refresh_expiry(db: Db, refresh_digest: bytes) -> datetime.datetime | None:
    expires_at: datetime.datetime | None = await db.fetchval(GET_REFRESH_EXPIRY, refresh_digest)
    return expires_at


# Link tokens (verification, email change, password reset) and their mails.


async def insert_account_token(
    connection: asyncpg.Connection,
    digest: bytes,
    user_id: uuid.UUID,
    purpose: str,
    email: str,
    lifetime_seconds: int,
) -> None:
    await connection.execute(INSERT_ACCOUNT_TOKEN, digest, user_id, purpose, email, lifetime_seconds)


async def find_account_token(connection: asyncpg.Connection, digest: bytes, purpose: str) -> uuid.UUID | None:
    """The user of a live token, without spending it."""
    user_id: uuid.UUID | None = await connection.fetchval(FIND_ACCOUNT_TOKEN, digest, purpose)
    return user_id


async def use_account_token(
    connection: asyncpg.Connection, digest: bytes, purpose: str
) -> asyncpg.Record | None:
    """Spend a live token: its user_id and email; None when spent, expired or unknown."""
    return await connection.fetchrow(USE_ACCOUNT_TOKEN, digest, purpose)


async def spend_account_tokens(connection: asyncpg.Connection, user_id: uuid.UUID, purpose: str) -> None:
    await connection.execute(SPEND_ACCOUNT_TOKENS, user_id, purpose)


async def count_account_mail(db: Db, purpose: str, email: str, window_seconds: int) -> asyncpg.Record:
    """Count one mail to `email` atomically: sent (its number in the window) and retry_after."""
    row: asyncpg.Record = await db.fetchrow(COUNT_ACCOUNT_MAIL, purpose, email, window_seconds)
    return row


async def find_reset_account(db: Db, email: str) -> asyncpg.Record | None:
    """id and email of the active local account a reset link may go to."""
    return await db.fetchrow(FIND_RESET_ACCOUNT, email)


async def reset_password(
    connection: asyncpg.Connection,
    user_id: uuid.UUID,
    password_hash: str,
    tokens_valid_after: int,
    email: str,
) -> str | None:
    """Set the password (and verify `email`); the account's email, None when it is not active."""
    changed: str | None = await connection.fetchval(
        RESET_PASSWORD, user_id, password_hash, tokens_valid_after, email
    )
    return changed


async def use_verification_token(connection: asyncpg.Connection, digest: bytes) -> asyncpg.Record | None:
    """Spend a verification or email-change token: user_id, email, purpose."""
    return await connection.fetchrow(USE_VERIFICATION_TOKEN, digest)


async def mark_email_verified(connection: asyncpg.Connection, user_id: uuid.UUID, email: str) -> User | None:
    row = await connection.fetchrow(MARK_EMAIL_VERIFIED, user_id, email)
    return None if row is None else row_to(User, row)


async def change_email(connection: asyncpg.Connection, user_id: uuid.UUID, email: str) -> User | None:
    """Move the account to `email` (asyncpg.UniqueViolationError when another account took it)."""
    row = await connection.fetchrow(CHANGE_EMAIL, user_id, email)
    return None if row is None else row_to(User, row)


async def get_verification_target(db: Db, user_id: uuid.UUID) -> asyncpg.Record | None:
    """email, email_verified, provider and is_active of the account."""
    return await db.fetchrow(GET_VERIFICATION_TARGET, user_id)


# The caller's own data: the export and the deletion.


async def export_two_factor(connection: asyncpg.Connection, user_id: uuid.UUID) -> ExportedTwoFactor:
    return row_to(ExportedTwoFactor, await connection.fetchrow(EXPORT_TWO_FACTOR, user_id))


async def export_identities(connection: asyncpg.Connection, user_id: uuid.UUID) -> list[ExportedIdentity]:
    return rows_to(ExportedIdentity, await connection.fetch(EXPORT_IDENTITIES, user_id))


async def export_tasks(connection: asyncpg.Connection, user_id: uuid.UUID) -> list[ExportedTask]:
    return rows_to(ExportedTask, await connection.fetch(EXPORT_TASKS, user_id))


async def export_scans(connection: asyncpg.Connection, user_id: uuid.UUID) -> list[Scan]:
    return rows_to(Scan, await connection.fetch(EXPORT_SCANS, user_id))


async def export_audit_events(connection: asyncpg.Connection, user_id: uuid.UUID) -> list[ExportedAuditEvent]:
    return rows_to(ExportedAuditEvent, await connection.fetch(EXPORT_AUDIT_EVENTS, user_id))


async def scrub_audit_actor(connection: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await connection.execute(SCRUB_AUDIT_ACTOR, user_id)


async def delete_login_failures(connection: asyncpg.Connection, email: str) -> None:
    await connection.execute(DELETE_LOGIN_FAILURES, email)


async def delete_account_mail(connection: asyncpg.Connection, email: str) -> None:
    await connection.execute(DELETE_ACCOUNT_MAIL, email)
