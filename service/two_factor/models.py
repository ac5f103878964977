"""Bodies of the two-factor routes (/api/auth/2fa)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from service.http.patterns import NO_NUL, whole
from service.security.passwords import MAX_PASSWORD_LENGTH

# Digits, or a backup code as printed or typed (letters, digits, spaces, dashes).
CODE_PATTERN = whole(r"[A-Za-z0-9 -]{1,32}")

Code = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=32,
        pattern=CODE_PATTERN,
        description=(
            "A 6-digit code from the authenticator app, or one of the backup codes "
            "(case, spaces and dashes do not matter)."
        ),
        examples=["123456"],
    ),
]
TotpCode = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=32,
        pattern=CODE_PATTERN,
        description="A 6-digit code from the authenticator app.",
        examples=["123456"],
    ),
]
Password = Annotated[str, Meta(min_length=1, max_length=MAX_PASSWORD_LENGTH, pattern=NO_NUL)]
MfaToken = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=512,
        pattern=whole(r"[A-Za-z0-9_-]+"),
        description="The `mfa_token` the login returned.",
    ),
]


class EnrolRequest(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password


class Enrolment(msgspec.Struct, kw_only=True):
    """The new authenticator's shared secret: show `otpauth_uri` as a QR code (or `secret` for
    typing in), then confirm with a code the app shows."""

    secret: Annotated[str, Meta(description="The shared secret, base32 (RFC 4648).")]
    otpauth_uri: Annotated[
        str, Meta(description="The otpauth:// URI authenticator apps read from a QR code.")
    ]


class ConfirmRequest(msgspec.Struct, forbid_unknown_fields=True):
    code: TotpCode


class BackupCodes(msgspec.Struct, kw_only=True):
    backup_codes: Annotated[
        list[str],
        Meta(description="10 single-use codes, shown once: each signs in instead of an authenticator code."),
    ]


class ReauthenticateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Proof that the caller is the account's owner: the password, or a current code."""

    current_password: Password | None = None
    code: Code | None = None


class VerifyRequest(msgspec.Struct, forbid_unknown_fields=True):
    mfa_token: MfaToken
    code: Code


class MfaChallenge(msgspec.Struct, kw_only=True):
    """A correct password of an account with two-factor on: no tokens yet. Send `mfa_token` with
    a code to POST /api/auth/2fa/verify within `expires_in` seconds."""

    mfa_required: Literal[True] = True
    mfa_token: str
    expires_in: Annotated[int, Meta(description="Seconds until the mfa_token expires.")]
