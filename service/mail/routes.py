"""/api/admin/mail: the outbox, for administrators (dead mails and why they failed)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import QueryParameter

from service.http.openapi import BEARER_SECURITY, problem_responses
from service.mail import queries
from service.mail.models import MailMessagePage, MailStatus
from service.security.guards import access, requires_admin


class MailController(Controller):
    path = "/admin/mail"
    tags = ["mail"]
    before_request = access(requires_admin)  # type: ignore[assignment]
    security = BEARER_SECURITY

    @get(
        "/",
        operation_id="listMail",
        summary="List outgoing mails (admin)",
        responses=problem_responses(400, 401, 403),
    )
    async def list_mail(
        self,
        state: State,
        status: Annotated[MailStatus | None, QueryParameter(description="Only mails in this state.")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> MailMessagePage:
        """Newest first, without bodies. `status=dead`: mails every delivery attempt failed for,
        with the last error."""
        messages, total = await queries.list_messages(state.pool, status, limit, offset)
        return MailMessagePage(items=messages, total=total, limit=limit, offset=offset)
