"""A session's bodies: the token pair a login or refresh returns, and a session as listed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta


class Token(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: Annotated[int, Meta(description="Seconds until the access token expires.")]
    refresh_token: str


class Session(msgspec.Struct, kw_only=True):
    """One login: a refresh-token family, from the login until it is ended or runs out."""

    id: uuid.UUID
    created_at: Annotated[datetime, Meta(description="The login.")]
    last_used_at: Annotated[datetime, Meta(description="The last refresh; the login if never refreshed.")]
    expires_at: Annotated[datetime, Meta(description="When the session ends however often it is refreshed.")]
    ip: Annotated[str | None, Meta(description="The client address of the last login or refresh.")]
    user_agent: Annotated[str | None, Meta(description="The User-Agent of the last login or refresh.")]
    provider: Annotated[str, Meta(description="How the user signs in (`local`: email and password).")]
    current: Annotated[bool, Meta(description="True for the session of the access token of this request.")]
