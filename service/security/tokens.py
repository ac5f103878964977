"""This service's own access tokens: short-lived JWTs signed with JWT_SECRET."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import msgspec

from service.settings import Settings

ISSUER = "service"
AUDIENCE = "service-api"
ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a secret
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "iss", "aud"]
# `iat`, `nbf` and `exp` are whole seconds, as every issuer writes them. Revocation needs finer:
# a password change cuts off tokens issued before it, to the microsecond (see now_microseconds),
# and a token issued later in the same second must keep working. This private claim carries that.
ISSUED_AT_MICROSECONDS = "iat_us"


class InvalidToken(Exception):
    """The token is malformed, forged, expired or of the wrong kind."""


class IssuedToken(msgspec.Struct, frozen=True):
    token: str
    jti: uuid.UUID
    expires_in: int


class VerifiedToken(msgspec.Struct, frozen=True):
    """What any verifier (ours, Supabase, Better Auth) vouches for."""

    provider: str
    subject: str
    issued_at: float
    expires_at: float
    jti: uuid.UUID | None = None
    email: str | None = None
    full_name: str | None = None
    email_verified: bool = False  # the provider's own claim that it proved `email`


# PyJWT checks every character of every segment in Python before decoding (2.15: about a third
# of a task-list request's CPU). A token string that passed every check is remembered, so the
# next request with the same string skips straight to the database's revocation check.
VERIFIED_TOKEN_TTL_SECONDS = 60.0
VERIFIED_TOKEN_CACHE_SIZE = 10_000


class VerifiedTokenCache:
    """Token string -> what its verifier vouched for, per app (so per secret and provider set).

    Only successes are kept, keyed by the whole token including its signature, so a hit is the
    very string that was verified. An entry lasts until the token's `exp` or for
    VERIFIED_TOKEN_TTL_SECONDS, whichever comes first: after that the token goes through its
    verifier again, which then answers 'expired', or sees a provider key that was withdrawn.
    Revocation (logout, a disabled account) is not cached: it is checked in the database on
    every request. At most VERIFIED_TOKEN_CACHE_SIZE entries; the oldest goes first.
    """

    def __init__(
        self, ttl_seconds: float = VERIFIED_TOKEN_TTL_SECONDS, size: int = VERIFIED_TOKEN_CACHE_SIZE
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.size = size
        self._entries: dict[str, tuple[float, VerifiedToken]] = {}

    def get(self, token: str, now: float) -> VerifiedToken | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if now >= entry[0]:
            del self._entries[token]
            return None
        return entry[1]

    def put(self, token: str, verified: VerifiedToken, now: float) -> None:
        if len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = (min(verified.expires_at, now + self.ttl_seconds), verified)

    def __len__(self) -> int:
        return len(self._entries)


def now_microseconds() -> int:
    """The one clock for token issue times and revocation cut-offs (users.tokens_valid_after),
    in the whole microseconds PostgreSQL keeps, so that both are compared exactly."""
    return time.time_ns() // 1000


def issue_access_token(settings: Settings, user_id: uuid.UUID) -> IssuedToken:
    issued_at = now_microseconds()
    now = issued_at // 1_000_000
    lifetime = settings.access_token_expire_minutes * 60
    jti = uuid.uuid4()
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "iat": now,
        ISSUED_AT_MICROSECONDS: issued_at,
        "nbf": now,
        "exp": now + lifetime,
        "jti": str(jti),
        "typ": ACCESS_TOKEN_TYPE,
    }
    token = jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)
    return IssuedToken(token=token, jti=jti, expires_in=lifetime)


def verify_access_token(settings: Settings, token: str) -> VerifiedToken:
    """Verify signature, algorithm, issuer, audience, lifetime and type of one of our tokens."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[settings.jwt_algorithm],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": _REQUIRED_CLAIMS},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.PyJWTError:
        raise InvalidToken("invalid token") from None
    if claims.get("typ") != ACCESS_TOKEN_TYPE:
        raise InvalidToken("not an access token")
    try:
        subject = str(uuid.UUID(claims["sub"]))
        jti = uuid.UUID(claims["jti"])
    except (ValueError, TypeError, AttributeError):
        raise InvalidToken("invalid token") from None
    precise = claims.get(ISSUED_AT_MICROSECONDS)
    # Exact: Python divides integers with correct rounding, as PostgreSQL casts tokens_valid_after.
    issued_at = precise / 1_000_000 if isinstance(precise, int) else float(claims["iat"])
    return VerifiedToken(
        provider="local",
        subject=subject,
        issued_at=issued_at,
        expires_at=float(claims["exp"]),
        jti=jti,
    )
