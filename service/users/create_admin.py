"""`service create-admin EMAIL`: the only way an administrator comes to exist (there is no default one).

It creates a local account with the admin role. An existing local account that is not an
administrator is promoted only with `--promote-existing`: registration checks no email address, so
anyone may have registered the email first, and promoting their account would hand them the
service. A promoted account keeps its password unless `--reset-password` is given. The password
comes from SERVICE_ADMIN_PASSWORD or a prompt that does not echo; it is never printed or logged.
Every change is an audit event without an actor (the command line has no account).
"""

from __future__ import annotations

import getpass
import re
import sys
from collections.abc import Callable, Mapping

import asyncpg

from service.db.pool import create_pool
from service.observability.audit import RequestOrigin, Target, record_event
from service.security.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    common_passwords,
    passwords_for,
)
from service.settings import Settings
from service.users import queries
from service.users.models import User

PASSWORD_VARIABLE = "SERVICE_ADMIN_PASSWORD"  # noqa: S105 (the variable's name, not a password)
_EMAIL = re.compile(r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
CLI_ORIGIN = RequestOrigin(ip=None, user_agent="service create-admin")


class AdminSetupError(Exception):
    """The command cannot go on; the message says why, and never contains the password."""


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if not 3 <= len(email) <= 320 or not _EMAIL.match(email):
        raise AdminSetupError(f"not an email address: {raw!r}")
    return email


def check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AdminSetupError(
            f"the password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long"
        )
    if "\x00" in password:
        raise AdminSetupError("the password must not contain NUL characters")
    # An administrator's password meets the strict policy whatever PASSWORD_POLICY says.
    if password.lower() in common_passwords():
        raise AdminSetupError(
            "the password is too common; choose one that is not on lists of leaked passwords"
        )


def read_password(environ: Mapping[str, str]) -> str:
    """SERVICE_ADMIN_PASSWORD if set, else asked twice on the terminal without echo."""
    password = environ.get(PASSWORD_VARIABLE)
    if password is None:
        if not sys.stdin.isatty():
            raise AdminSetupError(f"set {PASSWORD_VARIABLE}, or run in a terminal to be asked for it")
        try:
            password = getpass.getpass("Password for the administrator: ")
            check_password(password)
            if getpass.getpass("The same password again: ") != password:
                raise AdminSetupError("the two passwords differ")
        except (EOFError, KeyboardInterrupt):
            raise AdminSetupError("cancelled") from None
    check_password(password)
    return password


async def create_or_promote(
    settings: Settings,
    database_url: str,
    raw_email: str,
    ask_password: Callable[[], str],
    *,
    promote_existing: bool = False,
    reset_password: bool = False,
) -> str:
    """Do the work and return what happened, in a sentence for the operator."""
    email = normalise_email(raw_email)
    pool = await create_pool(settings, database_url)
    try:
        async with pool.acquire() as connection:
            existing = await queries.find_local_user(connection, email)
            if existing is not None and not promote_existing:
                _refuse_to_promote(existing)
            # Asked before the transaction starts, so no lock is held while someone types.
            needs_password = existing is None or reset_password
            password_hash = await passwords_for(settings).hash(ask_password()) if needs_password else None
            async with connection.transaction():
                user = await queries.find_local_user(connection, email)
                if user is None:
                    return await _create(connection, email, password_hash)
                if not promote_existing:
                    _refuse_to_promote(user)
                return await _promote(connection, user, password_hash)
    finally:
        await pool.close()


def _refuse_to_promote(user: User) -> None:
    if user.role == "admin":
        return
    raise AdminSetupError(
        f"an account {user.email} already exists and is not an administrator. Anyone can register "
        "any email address, so it may not be yours: if you know it is, run again with "
        "--promote-existing (it keeps its password; add --reset-password to set a new one from "
        f"{PASSWORD_VARIABLE} or the prompt); otherwise choose another email"
    )


async def _create(connection: asyncpg.Connection, email: str, password_hash: str | None) -> str:
    if password_hash is None:
        raise AdminSetupError(f"the account {email} was deleted while this ran; run the command again")
    admin = await queries.insert_admin(connection, email, password_hash)
    if admin is None:
        raise AdminSetupError(f"the account {email} was created while this ran; run the command again")
    await _record(connection, "user.admin_created", admin, {})
    return f"created the administrator {email}"


async def _promote(connection: asyncpg.Connection, user: User, password_hash: str | None) -> str:
    if user.role == "admin" and user.is_active and password_hash is None:
        return f"{user.email} is already an active administrator; nothing changed"
    admin = await queries.promote_user(connection, user.id, password_hash)
    done = []
    if user.role != "admin":
        await _record(connection, "user.promoted", admin, {"from": user.role})
        done.append("promoted to administrator")
    if not user.is_active:
        await _record(connection, "user.reactivated", admin, {})
        done.append("reactivated")
    if password_hash is not None:
        await queries.revoke_refresh_tokens(connection, user.id)
        await _record(connection, "user.password_reset", admin, {})
        done.append("given a new password (every session ended)")
    else:
        done.append(
            f"its password was left unchanged ({PASSWORD_VARIABLE} was not used; "
            "--reset-password sets a new one)"
        )
    return f"{user.email}: {', '.join(done)}"


async def _record(
    connection: asyncpg.Connection, action: str, user: User, details: dict[str, object]
) -> None:
    await record_event(
        connection,
        action,
        origin=CLI_ORIGIN,
        target=Target.user(user.id),
        details={"email": user.email, "source": "cli", **details},
    )
