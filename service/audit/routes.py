"""/api/audit-events: the security and admin events, for administrators."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, get
from litestar.datastructures import State
from litestar.exceptions import ValidationException
from litestar.params import QueryParameter

from service.audit import queries
from service.audit.models import AuditEventPage
from service.http.errors import invalid_field
from service.http.openapi import BEARER_SECURITY, problem_responses
from service.http.patterns import whole
from service.security.guards import access, requires_admin

Action = Annotated[
    str | None,
    QueryParameter(
        max_length=100,
        pattern=whole(r"[a-z_]+\.[a-z_]+"),
        description="Exact action, e.g. `auth.login_failed` or `user.deleted`.",
    ),
]
UTC_RANGE = "must be between 0001-01-01 and 9999-12-31 in UTC"
INSTANT_HELP = "ISO 8601 instant (encode `+` as %2B); without an offset it is taken as UTC."


def _utc(name: str, instant: datetime | None) -> datetime | None:
    """The instant in UTC, checked here: one with no UTC equivalent (0001-01-01T00:00+01:00) would
    otherwise be refused by the driver, in words meant for us."""
    if instant is None:
        return None
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        raise invalid_field(name, UTC_RANGE, source="query") from None


class AuditEventsController(Controller):
    path = "/audit-events"
    tags = ["audit"]
    before_request = access(requires_admin)  # type: ignore[assignment]
    security = BEARER_SECURITY

    @get(
        "/",
        operation_id="listAuditEvents",
        summary="List audit events (admin)",
        responses=problem_responses(400, 401, 403),
    )
    async def list_events(
        self,
        state: State,
        action: Action = None,
        actor_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
        since: Annotated[datetime | None, QueryParameter(description=INSTANT_HELP)] = None,
        until: Annotated[datetime | None, QueryParameter(description=INSTANT_HELP)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> AuditEventPage:
        """Newest first. `since` is inclusive and `until` exclusive."""
        since, until = _utc("since", since), _utc("until", until)
        if since is not None and until is not None and since > until:
            raise ValidationException("since must not be later than until")
        events, total = await queries.list_events(
            state.pool, action=action, actor_id=actor_id, since=since, until=until, limit=limit, offset=offset
        )
        return AuditEventPage(items=events, total=total, limit=limit, offset=offset)
