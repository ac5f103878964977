"""The identity queries: sql/identities/ files that link a provider's user to ours."""

from __future__ import annotations

import uuid
from typing import TypeAlias

import asyncpg

from service.db.sql import load_sql

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection

FIND_IDENTITY_USER = load_sql("identities/find_identity_user")
PROVISION_IDENTITY = load_sql("identities/provision_identity")


async def find_identity_user(db: Db, provider: str, subject: str) -> uuid.UUID | None:
    user_id: uuid.UUID | None = await db.fetchval(FIND_IDENTITY_USER, provider, subject)
    return user_id


async def provision_identity(
    connection: asyncpg.Connection,
    provider: str,
    subject: str,
    email: str | None,
    full_name: str | None,
    email_verified: bool,
) -> uuid.UUID | None:
    """Create the user and link the identity; None when a concurrent first request linked it."""
    user_id: uuid.UUID | None = await connection.fetchval(
        PROVISION_IDENTITY, provider, subject, email, full_name, email_verified
    )
    return user_id
