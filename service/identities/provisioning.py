"""Just-in-time provisioning: the first verified token of a provider identity creates its user."""

from __future__ import annotations

import uuid
from typing import NamedTuple

import asyncpg
from litestar.exceptions import NotAuthorizedException

from service.identities import queries
from service.observability.audit import ActorRef, RequestOrigin, Target, record_event


class Identity(NamedTuple):
    """A provider's user, from the claims of one of its verified tokens."""

    provider: str
    subject: str
    email: str | None
    full_name: str | None
    email_verified: bool = False  # the provider's own claim that it proved `email`


async def user_for_identity(pool: asyncpg.Pool, verified: Identity, origin: RequestOrigin) -> uuid.UUID:
    """The user linked to (provider, subject), created just in time on the identity's first token."""
    user_id = await queries.find_identity_user(pool, verified.provider, verified.subject)
    if user_id is not None:
        return user_id
    async with pool.acquire() as connection, connection.transaction():
        user_id = await queries.provision_identity(
            connection,
            verified.provider,
            verified.subject,
            verified.email,
            verified.full_name,
            verified.email_verified,
        )
        if user_id is None:  # a concurrent first request linked this identity; use its user
            user_id = await queries.find_identity_user(connection, verified.provider, verified.subject)
        else:
            await record_event(
                connection,
                "auth.register",
                origin=origin,
                actor=ActorRef(user_id, verified.email),
                target=Target.user(user_id),
                details={"provider": verified.provider, "subject": verified.subject},
            )
    if user_id is None:  # the identity's user was deleted between those two statements
        raise NotAuthorizedException("account is not active")
    return user_id
