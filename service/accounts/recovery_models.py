"""Bodies of the email-verification and password-reset routes."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from service.accounts.models import Email, NewPassword
from service.http.patterns import whole

# What the links carry: 43 URL-safe characters today; a little room, never a large body.
LinkToken = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=256,
        pattern=whole(r"[A-Za-z0-9_-]+"),
        description="The `token` query parameter of the link in the mail (URL-safe base64).",
    ),
]


class VerifyEmailRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: LinkToken


class ForgotPasswordRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email


class ResetPasswordRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: LinkToken
    password: NewPassword


class Accepted(msgspec.Struct, kw_only=True):
    """The request was taken; what follows happens by mail."""

    detail: Annotated[str, Meta(examples=["if an account has this email, a reset link is on its way"])]
