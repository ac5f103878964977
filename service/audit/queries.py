"""The audit-event queries: sql/audit/ files that write the trail (for
service/observability/audit.py's record_event) and read it (GET /api/audit-events)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from service.audit.models import AuditEvent
from service.db.sql import load_sql, rows_to

LIST_EVENTS = load_sql("audit/list_events")
COUNT_EVENTS = load_sql("audit/count_events")
INSERT_EVENT = load_sql("audit/insert_event")


async def insert_event(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    actor_id: uuid.UUID | None,
    actor_email: str | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    ip: str | None,
    user_agent: str | None,
    details: dict[str, Any],
) -> None:
    await db.execute(
        INSERT_EVENT, actor_id, actor_email, action, target_type, target_id, ip, user_agent, details
    )


async def list_events(
    pool: asyncpg.Pool,
    *,
    action: str | None,
    actor_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[AuditEvent], int]:
    """One page of matching events, newest first, and how many match over all pages (both read
    from one snapshot)."""
    filters = (action, actor_id, since, until)
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = await connection.fetch(LIST_EVENTS, *filters, limit, offset)
        total = await connection.fetchval(COUNT_EVENTS, *filters)
    return rows_to(AuditEvent, rows), total
