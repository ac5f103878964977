"""Bodies of the /audit-events route."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta


class AuditEvent(msgspec.Struct, kw_only=True):
    id: int
    at: datetime
    actor_id: Annotated[
        uuid.UUID | None,
        Meta(description="Who acted; null for the CLI, anonymous callers or a deleted user."),
    ]
    actor_email: Annotated[str | None, Meta(description="The actor's email when the event happened.")]
    action: Annotated[str, Meta(examples=["auth.login_failed", "user.deleted"])]
    target_type: str | None
    target_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]


class AuditEventPage(msgspec.Struct, kw_only=True):
    items: list[AuditEvent]
    total: Annotated[int, Meta(description="Events matching the filters, across all pages.")]
    limit: int
    offset: int
