"""Request and response bodies of the auth routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from service.http.patterns import NO_CONTROL_CHARACTERS, NO_NUL, whole
from service.scans.models import Scan
from service.security.passwords import MAX_PASSWORD_LENGTH
from service.sessions.models import Session
from service.users.models import User

# The WHATWG HTML form rule for an email address, with at least one dot in the domain.
EMAIL_PATTERN = whole(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
MAX_EMAIL_LENGTH = 320

Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=MAX_EMAIL_LENGTH,
        pattern=EMAIL_PATTERN,
        description="An email address; compared and stored lowercased.",
        examples=["ada@example.com"],
    ),
]
LoginName = Annotated[
    str,
    # No NUL: the name is looked up in PostgreSQL, which cannot hold one.
    Meta(
        min_length=1,
        max_length=MAX_EMAIL_LENGTH,
        pattern=NO_NUL,
        description="The account's email address.",
    ),
]
NewPassword = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_PASSWORD_LENGTH,
        description=(
            "8 to 128 characters, any characters, no composition rules; "
            "a password on the list of the 10,000 most common ones is refused."
        ),
    ),
]
CurrentPassword = Annotated[str, Meta(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
FullName = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_CONTROL_CHARACTERS)]
OpaqueToken = Annotated[str, Meta(min_length=1, max_length=512)]


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: NewPassword
    full_name: FullName | None = None


class LoginJSON(msgspec.Struct, forbid_unknown_fields=True):
    """A JSON login: `email` (or `username`, as in the form) and `password`."""

    password: CurrentPassword
    email: LoginName | None = None
    username: LoginName | None = None


class LoginForm(msgspec.Struct, forbid_unknown_fields=True):
    """The OAuth2 password grant form (RFC 6749 section 4.3)."""

    username: LoginName
    password: CurrentPassword
    # A form has no null: an optional field is absent or a string.
    grant_type: Literal["password"] = "password"
    scope: Annotated[str, Meta(max_length=1000)] = ""
    client_id: Annotated[str, Meta(max_length=200)] = ""
    client_secret: Annotated[str, Meta(max_length=200)] = ""


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: OpaqueToken


class LogoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Optional: the session's refresh token, so its family ends even if the access token was
    issued elsewhere."""

    refresh_token: OpaqueToken | None = None


class UpdateMeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Change the caller's own profile. `null` clears `full_name`; a new `password` needs
    `current_password` and ends every other session; a new `email` needs `current_password`,
    and applies when the link mailed to it is followed (POST /api/auth/verify-email)."""

    full_name: FullName | UnsetType | None = UNSET
    password: NewPassword | UnsetType = UNSET
    current_password: CurrentPassword | UnsetType = UNSET
    email: Email | UnsetType = UNSET


class Me(User, kw_only=True):
    """The caller's own account."""

    mfa_enabled: Annotated[bool, Meta(description="Whether two-factor sign-in is on.")]


class DeleteMeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A local account proves its owner with `current_password`. An account of an identity
    provider sends no body and a bearer token issued within the last 5 minutes (sign in again)."""

    current_password: CurrentPassword | None = None


class ExportedIdentity(msgspec.Struct, kw_only=True):
    provider: str
    subject: str
    email: str | None
    created_at: datetime


class ExportedTask(msgspec.Struct, kw_only=True):
    id: int
    title: str
    description: str | None
    is_completed: bool
    created_at: datetime
    updated_at: datetime


class ExportedAuditEvent(msgspec.Struct, kw_only=True):
    id: int
    at: datetime
    action: str
    target_type: str | None
    target_id: str | None
    by_you: Annotated[bool, Meta(description="False: someone else (an administrator) acted on your account.")]
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]


class ExportedTwoFactor(msgspec.Struct, kw_only=True):
    enabled: bool
    enabled_at: datetime | None
    backup_codes_left: int


class AccountExport(msgspec.Struct, kw_only=True):
    """Everything stored about the caller; no password hash, secret, token or code."""

    exported_at: datetime
    profile: Me
    identities: list[ExportedIdentity]
    two_factor: ExportedTwoFactor
    sessions: list[Session]
    tasks: list[ExportedTask]
    scans: list[Scan]
    audit_events: list[ExportedAuditEvent]
