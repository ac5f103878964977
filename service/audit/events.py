"""Audit events: one function that every domain calls inside the transaction of its change."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
import msgspec
from litestar.connection import ASGIConnection

from service.db.pool import load_sql

INSERT_EVENT = load_sql("audit/insert_event")

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


async def record_event(
    connection: asyncpg.Connection | asyncpg.Pool,
    action: str,
    *,
    origin: RequestOrigin,
    actor_id: uuid.UUID | None = None,
    actor_email: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Persist one event; pass the transaction's connection so it commits or rolls back with the change."""
    await connection.execute(
        INSERT_EVENT,
        actor_id,
        actor_email,
        action,
        target_type,
        target_id,
        origin.ip,
        origin.user_agent,
        details or {},
    )
    log.info(
        "audit event",
        extra={"action": action, "actor_id": str(actor_id) if actor_id else None, "target_id": target_id},
    )
