"""A mail to send, and the outbox as administrators see it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

MailStatus = Literal["pending", "sent", "dead"]


class Mail(msgspec.Struct, frozen=True, kw_only=True):
    """One message: `kind` names what it is for (verify_email, reset_password, ...)."""

    kind: str
    recipient: str
    subject: str
    text: str
    html: str


class MailMessage(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    kind: Annotated[str, Meta(examples=["verify_email", "reset_password", "password_changed"])]
    recipient: str
    subject: str
    status: Annotated[
        MailStatus,
        Meta(description="pending: to deliver (retried with backoff); sent; dead: every attempt failed."),
    ]
    attempts: Annotated[int, Meta(description="Delivery attempts made so far.")]
    last_error: Annotated[str | None, Meta(description="Why the last attempt failed.")]
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


class MailMessagePage(msgspec.Struct, kw_only=True):
    items: list[MailMessage]
    total: Annotated[int, Meta(description="Mails matching the filter, across all pages.")]
    limit: int
    offset: int
