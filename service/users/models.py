"""Bodies of the /users routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from service.http.patterns import NO_CONTROL_CHARACTERS

Role = Literal["user", "admin"]
# PostgreSQL cannot store NUL, and control characters in a display name are never intended.
FullName = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_CONTROL_CHARACTERS)]


class User(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    email: str | None
    full_name: str | None
    role: Role
    is_active: bool
    provider: str
    email_verified: Annotated[
        bool,
        Meta(
            description=(
                "The address is proven: a verification link was followed (local accounts), "
                "or the identity provider said so at the first sign-in."
            )
        ),
    ]
    created_at: datetime
    updated_at: datetime


class UserPage(msgspec.Struct, kw_only=True):
    items: list[User]
    total: Annotated[int, Meta(description="Users matching the filters, across all pages.")]
    limit: int
    offset: int


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A partial update: absent fields stay as they are, `null` clears `full_name`.

    `role` and `is_active` are for administrators; anyone else sending them gets 403, and any
    other field is refused with 400, so nothing is ever set that the caller was not allowed to.
    """

    full_name: FullName | UnsetType | None = UNSET
    role: Role | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET

    @property
    def admin_fields(self) -> list[str]:
        return [name for name in ("role", "is_active") if getattr(self, name) is not UNSET]
