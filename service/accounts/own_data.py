"""The caller's own data: everything stored about them as one JSON document, and deleting the
account with everything it owns."""

from __future__ import annotations

import datetime
import time

import asyncpg
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from service.accounts import credentials
from service.accounts.models import (
    AccountExport,
    ExportedAuditEvent,
    ExportedIdentity,
    ExportedTask,
    ExportedTwoFactor,
)
from service.db.pool import in_transaction
from service.db.sql import load_sql, row_to, rows_to
from service.http.errors import Conflict, invalid_field
from service.observability.audit import ActorRef, RequestOrigin, Target, record_event
from service.scans.models import Scan
from service.security.auth import LOCAL_PROVIDER, Caller
from service.sessions.service import list_sessions
from service.settings import Settings

EXPORT_IDENTITIES = load_sql("accounts/export_identities")
EXPORT_TASKS = load_sql("accounts/export_tasks")
EXPORT_SCANS = load_sql("accounts/export_scans")
EXPORT_AUDIT_EVENTS = load_sql("accounts/export_audit_events")
EXPORT_TWO_FACTOR = load_sql("accounts/export_two_factor")
SCRUB_AUDIT_ACTOR = load_sql("accounts/scrub_audit_actor")
DELETE_LOGIN_FAILURES = load_sql("accounts/delete_login_failures")
DELETE_ACCOUNT_MAIL = load_sql("accounts/delete_account_mail")
LOCK_ADMIN_SET = load_sql("users/lock_admin_set")
LOCK_USER_FOR_DELETE = load_sql("users/lock_user_for_delete")
COUNT_OTHER_ACTIVE_ADMINS = load_sql("users/count_other_active_admins")
DELETE_USER = load_sql("users/delete_user")

# How recent a provider's sign-in must be to delete the account (the token's iat).
FRESH_SIGN_IN_SECONDS = 300


async def export(pool: asyncpg.Pool, caller: Caller) -> AccountExport:
    """One consistent snapshot (a repeatable-read transaction) of every row about the caller."""
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        profile = (await credentials.get_me(connection, caller.id)).user
        two_factor = await connection.fetchrow(EXPORT_TWO_FACTOR, caller.id)
        return AccountExport(
            exported_at=datetime.datetime.now(datetime.UTC),
            profile=profile,
            identities=rows_to(ExportedIdentity, await connection.fetch(EXPORT_IDENTITIES, caller.id)),
            two_factor=row_to(ExportedTwoFactor, two_factor),
            sessions=await list_sessions(connection, caller.id, caller.token_jti),
            tasks=rows_to(ExportedTask, await connection.fetch(EXPORT_TASKS, caller.id)),
            scans=rows_to(Scan, await connection.fetch(EXPORT_SCANS, caller.id)),
            audit_events=rows_to(ExportedAuditEvent, await connection.fetch(EXPORT_AUDIT_EVENTS, caller.id)),
        )


async def delete_me(
    pool: asyncpg.Pool,
    settings: Settings,
    caller: Caller,
    current_password: str | None,
    origin: RequestOrigin,
) -> None:
    """Delete the caller's account and everything it owns (ON DELETE CASCADE: sessions, revoked
    tokens, identities, tasks, scans, two-factor); its access tokens stop working at once (no
    user row). The audit trail keeps the events without the person: see scrub_audit_actor.sql."""
    email: str | None = None
    if caller.provider == LOCAL_PROVIDER:
        if current_password is None:
            raise invalid_field("current_password", "required to delete the account")
        email = await credentials.check_current_password(pool, settings, caller, current_password, origin)
    elif time.time() - caller.token_issued_at > FRESH_SIGN_IN_SECONDS:
        raise PermissionDeniedException(
            f"sign in again at {caller.provider} and delete the account within 5 minutes of that sign-in"
        )

    async def delete(connection: asyncpg.Connection) -> None:
        await connection.execute(LOCK_ADMIN_SET)
        current = await connection.fetchrow(LOCK_USER_FOR_DELETE, caller.id)
        if current is None:
            raise NotAuthorizedException("account is not active")
        last_admin = current["role"] == "admin" and current["is_active"]
        if last_admin and await connection.fetchval(COUNT_OTHER_ACTIVE_ADMINS, caller.id) == 0:
            raise Conflict("this is the last active administrator; make another user an admin first")
        await connection.execute(SCRUB_AUDIT_ACTOR, caller.id)
        if email is not None:
            await connection.execute(DELETE_LOGIN_FAILURES, email)
            await connection.execute(DELETE_ACCOUNT_MAIL, email)
        # Written before the delete, which then sets its actor_id to NULL: no name, no address.
        await record_event(
            connection,
            "account.deleted",
            origin=RequestOrigin(ip=None, user_agent=None),
            actor=ActorRef(caller.id, None),
            target=Target.user(caller.id),
            details={"provider": caller.provider, "by": "owner"},
        )
        await connection.execute(DELETE_USER, caller.id)

    await in_transaction(pool, delete)
