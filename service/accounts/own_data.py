"""The caller's own data: everything stored about them as one JSON document, and deleting the
account with everything it owns."""

from __future__ import annotations

import datetime
import time

import asyncpg
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from service.accounts import credentials, queries
from service.accounts.models import (
    AccountExport,
)
from service.db.pool import in_transaction
from service.http.errors import Conflict, invalid_field
from service.observability.audit import ActorRef, RequestOrigin, Target, record_event
from service.security.auth import LOCAL_PROVIDER, Caller
from service.sessions.service import list_sessions
from service.settings import Settings
from service.users import queries as users_queries

# How recent a provider's sign-in must be to delete the account (the token's iat).
FRESH_SIGN_IN_SECONDS = 300


async def export(pool: asyncpg.Pool, caller: Caller) -> AccountExport:
    """One consistent snapshot (a repeatable-read transaction) of every row about the caller."""
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        profile = (await credentials.get_me(connection, caller.id)).user
        two_factor = await queries.export_two_factor(connection, caller.id)
        return AccountExport(
            exported_at=datetime.datetime.now(datetime.UTC),
            profile=profile,
            identities=await queries.export_identities(connection, caller.id),
            two_factor=two_factor,
            sessions=await list_sessions(connection, caller.id, caller.token_jti),
            tasks=await queries.export_tasks(connection, caller.id),
            scans=await queries.export_scans(connection, caller.id),
            audit_events=await queries.export_audit_events(connection, caller.id),
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
        await users_queries.lock_admin_set(connection)
        current = await users_queries.lock_user_for_delete(connection, caller.id)
        if current is None:
            raise NotAuthorizedException("account is not active")
        last_admin = current.role == "admin" and current.is_active
        if last_admin and await users_queries.count_other_active_admins(connection, caller.id) == 0:
            raise Conflict("this is the last active administrator; make another user an admin first")
        await queries.scrub_audit_actor(connection, caller.id)
        if email is not None:
            await queries.delete_login_failures(connection, email)
            await queries.delete_account_mail(connection, email)
        # Written before the delete, which then sets its actor_id to NULL: no name, no address.
        await record_event(
            connection,
            "account.deleted",
            origin=RequestOrigin(ip=None, user_agent=None),
            actor=ActorRef(caller.id, None),
            target=Target.user(caller.id),
            details={"provider": caller.provider, "by": "owner"},
        )
        await users_queries.delete_user(connection, caller.id)

    await in_transaction(pool, delete)
