"""Who is calling: bearer token -> verified claims -> an active user, once per request.

`authenticate(connection)` is the one entry point; the `caller` dependency and the guards
both use it, and the result is kept on the scope so a request verifies its token once.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException

from service.db.pool import load_sql
from service.http.openapi import BEARER_SCHEME, PASSWORD_SCHEME
from service.identities.provisioning import Identity, user_for_identity
from service.observability.audit import RequestOrigin
from service.security.caller_cache import CachedUser, CallerCache
from service.security.jwks import JwksCache, jwks_cache
from service.security.providers import choose_provider, verify_provider_token
from service.security.tokens import (
    ISSUER,
    InvalidToken,
    VerifiedToken,
    VerifiedTokenCache,
    verify_access_token,
)
from service.settings import Settings

GET_CALLER = load_sql("accounts/get_caller")

# Either scheme ends in the same bearer token; Swagger UI offers the password flow as a login form.
BEARER_SECURITY: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}, {PASSWORD_SCHEME: []}]
_SCOPE_KEY = "caller"
VERIFIED_TOKENS_KEY = "verified_tokens"
CALLER_CACHE_KEY = "caller_cache"
LOCAL_PROVIDER = "local"


class Caller(msgspec.Struct, frozen=True):
    """The authenticated user of this request."""

    id: uuid.UUID
    subject: str  # the token's `sub`: the user id for our tokens, the provider's id otherwise
    email: str | None
    role: str
    provider: str
    token_jti: uuid.UUID | None
    token_expires_at: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization")
    if not header:
        raise NotAuthorizedException("missing bearer token")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("invalid authorization header: expected 'Bearer <token>'")
    if len(token) > 8192:
        raise NotAuthorizedException("invalid token")
    return token


class _UnverifiedIssuer(msgspec.Struct):
    iss: str | None = None


_issuer_decoder = msgspec.json.Decoder(_UnverifiedIssuer)


def _unverified_issuer(token: str) -> str | None:
    """The `iss` claim, read only to choose a verifier, which then checks everything, this too.
    Cheaper than a second full jwt.decode on every request."""
    try:
        _, payload, _ = token.split(".")
        claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        return _issuer_decoder.decode(claims).iss
    except (ValueError, binascii.Error, msgspec.DecodeError):
        raise InvalidToken("invalid token") from None


async def verify_token(settings: Settings, token: str, provider_keys: JwksCache) -> VerifiedToken:
    """Route the token to exactly one verifier, chosen by our configuration and its issuer."""
    issuer = _unverified_issuer(token)
    if issuer == ISSUER:
        return verify_access_token(settings, token)
    provider = choose_provider(settings, issuer)
    if provider is None:
        raise InvalidToken("token issuer is not accepted")
    return await verify_provider_token(provider, token, provider_keys)


async def verified_token(state: State, token: str) -> VerifiedToken:
    """verify_token, remembered: a token string that passed every check is not checked again
    until it expires or VERIFIED_TOKEN_TTL_SECONDS pass (see VerifiedTokenCache)."""
    cache = state.get(VERIFIED_TOKENS_KEY)
    if not isinstance(cache, VerifiedTokenCache):
        cache = VerifiedTokenCache()
        state[VERIFIED_TOKENS_KEY] = cache
    now = time.time()
    verified = cache.get(token, now)
    if verified is None:
        verified = await verify_token(state.settings, token, jwks_cache(state))
        cache.put(token, verified, now)
    return verified


def caller_cache(state: State) -> CallerCache:
    """The worker's caller cache; an app without one (a floor, a test) gets one that is never
    trusted, so every lookup reads the database."""
    cache = state.get(CALLER_CACHE_KEY)
    if not isinstance(cache, CallerCache):
        cache = CallerCache(capacity=0)
        state[CALLER_CACHE_KEY] = cache
    return cache


async def _resolve_user_id(
    connection: ASGIConnection[Any, Any, Any, Any], verified: VerifiedToken, cache: CallerCache
) -> uuid.UUID:
    if verified.provider == LOCAL_PROVIDER:
        return uuid.UUID(verified.subject)
    user_id = cache.identity(verified.provider, verified.subject)
    if user_id is None:
        ticket = cache.ticket()
        identity = Identity(verified.provider, verified.subject, verified.email, verified.full_name)
        user_id = await user_for_identity(connection.app.state.pool, identity, RequestOrigin.of(connection))
        cache.store_identity(ticket, verified.provider, verified.subject, user_id)
    return user_id


async def _caller_state(
    state: State, cache: CallerCache, user_id: uuid.UUID, verified: VerifiedToken
) -> tuple[CachedUser | None, bool]:
    """The user behind the token and whether the token was revoked: from the cache when it
    knows both, else from one query (sql/accounts/get_caller.sql), remembered for next time."""
    user = cache.user(user_id)
    jti = verified.jti
    revoked = False if jti is None else cache.token_revoked(jti, time.time())
    if user is not None and revoked is not None:
        cache.hits += 1
        return user, revoked
    cache.misses += 1
    ticket = cache.ticket()
    row = await state.pool.fetchrow(GET_CALLER, user_id, jti)
    if row is None:
        return None, False
    user = CachedUser(
        id=row["id"],
        email=row["email"],
        role=row["role"],
        provider=row["provider"],
        is_active=row["is_active"],
        tokens_valid_after=row["tokens_valid_after"],
    )
    cache.store_user(ticket, user)
    if jti is not None:
        cache.store_token(ticket, jti, row["revoked"], verified.expires_at)
    return user, row["revoked"]


def _caller_in_scope(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller | None:
    """The caller `authenticate` already established for this request, if it did."""
    cached = connection.scope.get(_SCOPE_KEY)  # type: ignore[call-overload]
    return cached if isinstance(cached, Caller) else None


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    cached = _caller_in_scope(connection)
    if cached is not None:
        return cached
    state = connection.app.state
    token = _bearer_token(connection)
    try:
        verified = await verified_token(state, token)
    except InvalidToken as exc:
        raise NotAuthorizedException(str(exc)) from None
    cache = caller_cache(state)
    user_id = await _resolve_user_id(connection, verified, cache)
    user, revoked = await _caller_state(state, cache, user_id, verified)
    if user is None or not user.is_active:
        raise NotAuthorizedException("account is not active")
    if revoked or verified.issued_at < user.tokens_valid_after:
        raise NotAuthorizedException("token has been revoked")
    caller = Caller(
        id=user.id,
        subject=verified.subject,
        email=user.email,
        role=user.role,
        provider=user.provider,
        token_jti=verified.jti,
        token_expires_at=verified.expires_at,
    )
    connection.scope[_SCOPE_KEY] = caller  # type: ignore[literal-required]
    return caller


def authenticated_caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """The caller `authenticate` already established for this request (in a `before_request`
    hook), without going through dependency injection: on the task routes, resolving the
    `caller` dependency was about 5 % of a request's CPU (bench/inproc.py)."""
    caller = _caller_in_scope(connection)
    if caller is None:
        raise NotAuthorizedException("not authenticated")  # a route without the hook: fail closed
    return caller


async def provide_caller(request: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    return await authenticate(request)


CALLER_DEPENDENCY = {"caller": Provide(provide_caller)}
