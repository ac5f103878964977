"""The audit trail: `record_event`, which every domain calls inside the transaction of its change.

The events are listed to administrators by /api/audit-events (service/audit/).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, NamedTuple, Protocol

import asyncpg
import msgspec
from litestar.connection import ASGIConnection

from service.audit import queries

log = logging.getLogger("service.audit")


class RequestOrigin(msgspec.Struct, frozen=True):
    """Where a request came from, as recorded with each event."""

    ip: str | None
    user_agent: str | None

    @classmethod
    def of(cls, connection: ASGIConnection[Any, Any, Any, Any]) -> RequestOrigin:
        client = connection.scope.get("client_ip")  # type: ignore[call-overload]
        if not isinstance(client, str):
            client = connection.client.host if connection.client else None
        agent = connection.headers.get("user-agent")
        return cls(ip=client, user_agent=agent[:512] if agent else None)


class Actor(Protocol):
    """Who acted: a Caller, a User, or an `ActorRef` built from a row."""

    @property
    def id(self) -> uuid.UUID | None: ...

    @property
    def email(self) -> str | None: ...


class ActorRef(NamedTuple):
    id: uuid.UUID | None  # None: an email that names no account (a failed login)
    email: str | None


class Target(NamedTuple):
    """What the event is about."""

    type: str
    id: str

    @classmethod
    def user(cls, user_id: uuid.UUID) -> Target:
        return cls("user", str(user_id))

    @classmethod
    def session(cls, session_id: uuid.UUID) -> Target:
        return cls("session", str(session_id))

    @classmethod
    def scan(cls, scan_id: uuid.UUID | int) -> Target:
        return cls("scan", str(scan_id))


async def record_event(
    connection: asyncpg.Connection | asyncpg.Pool,
    action: str,
    *,
    origin: RequestOrigin,
    actor: Actor | None = None,
    target: Target | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Persist one event; pass the transaction's connection so it commits or rolls back with the change."""
    actor_id = actor.id if actor is not None else None
    target_id = target.id if target is not None else None
    await queries.insert_event(
        connection,
        actor_id=actor_id,
        actor_email=actor.email if actor is not None else None,
        action=action,
        target_type=target.type if target is not None else None,
        target_id=target_id,
        ip=origin.ip,
        user_agent=origin.user_agent,
        details=details or {},
    )
    log_event(action, actor_id, target_id)


def log_event(action: str, actor_id: uuid.UUID | None, target_id: str | None) -> None:
    """The log line of a recorded event; for a statement that inserts its event itself (the
    login's, sql/accounts/start_password_session.sql), once it has committed."""
    log.info(
        "audit event",
        extra={"action": action, "actor_id": str(actor_id) if actor_id else None, "target_id": target_id},
    )
