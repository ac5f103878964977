"""/api/admin/mail: the outbox, for administrators (dead mails and why they failed)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import QueryParameter

from service.db.sql import load_sql, rows_to
from service.http.openapi import BEARER_SECURITY, problem_responses
from service.mail.models import MailMessage, MailMessagePage, MailStatus
from service.security.guards import access, requires_admin

LIST_MESSAGES = load_sql("mail/list_messages")
COUNT_MESSAGES = load_sql("mail/count_messages")


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
        async with (
            state.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await connection.fetch(LIST_MESSAGES, status, limit, offset)
            total = await connection.fetchval(COUNT_MESSAGES, status)
        return MailMessagePage(items=rows_to(MailMessage, rows), total=total, limit=limit, offset=offset)
