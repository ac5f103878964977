"""Who is calling: bearer token -> verified claims -> an active user, once per request.

`authenticate(connection)` is called by the route's requirement, the one way a route is
authenticated (`before_request=access(...)`, service/security/guards.py, whose docstring has
the rule); it keeps the caller on the scope. Handlers read that caller, never authenticating a
second time: through the `caller` dependency (`CALLER_DEPENDENCY`), or, on the task routes, by
calling `authenticated_caller(request)`, the function the dependency calls.
"""

from __future__ import annotations

import functools
import time
import uuid
from typing import Any, cast

import msgspec
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from service.accounts import queries as accounts_queries
from service.identities.provisioning import Identity, user_for_identity
from service.observability.audit import RequestOrigin
from service.security.caller_cache import CachedUser, CallerCache
from service.security.tokens import InvalidToken, VerifiedToken
from service.security.verification import verified_token
from service.two_factor import queries as two_factor_queries

_SCOPE_KEY = "caller"
CALLER_CACHE_KEY = "caller_cache"
LOCAL_PROVIDER = "local"
# A route handler's opt key: reachable by an admin whom REQUIRE_MFA_FOR_ADMINS holds back (the
# enrolment routes, /api/auth/me, logout).
MFA_EXEMPT = "mfa_exempt"


class Caller(msgspec.Struct, frozen=True):
    """The authenticated user of this request."""

    id: uuid.UUID
    subject: str  # the token's `sub`: the user id for our tokens, the provider's id otherwise
    email: str | None
    role: str
    provider: str
    token_jti: uuid.UUID | None
    token_expires_at: float
    token_issued_at: float = 0.0  # epoch seconds: how fresh a provider's sign-in is

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _bearer_token(scope: Any) -> str:
    # Read straight from the scope (ASGI header names are lowercase): `connection.headers`
    # builds Litestar's Headers object first, 1.3 % of a task list's samples (py-spy,
    # bench/cpu_per_request.py), and nothing else on the task list needs it.
    header = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value.decode("latin-1")
            break
    if not header:
        raise NotAuthorizedException("missing bearer token")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("invalid authorization header: expected 'Bearer <token>'")
    if len(token) > 8192:
        raise NotAuthorizedException("invalid token")
    return token


def caller_cache(state: State) -> CallerCache:
    """The worker's caller cache; an app without one (a floor, a test) gets one that is never
    trusted, so every lookup reads the database."""
    cache = state.get(CALLER_CACHE_KEY)
    if not isinstance(cache, CallerCache):
        cache = CallerCache(capacity=0)
        state[CALLER_CACHE_KEY] = cache
    return cache


@functools.lru_cache(maxsize=4096)
def local_user_id(subject: str) -> uuid.UUID:
    """Our tokens' subject is the user id: parsed once per subject (uuid.UUID's parser was
    0.7 % of a task list's samples; UUIDs are immutable, so sharing one is safe)."""
    return uuid.UUID(subject)


async def _resolve_user_id(
    scope: Any, state: State, verified: VerifiedToken, cache: CallerCache
) -> uuid.UUID:
    if verified.provider == LOCAL_PROVIDER:
        return local_user_id(verified.subject)
    user_id = cache.identity(verified.provider, verified.subject)
    if user_id is None:
        ticket = cache.ticket()
        identity = Identity(
            verified.provider, verified.subject, verified.email, verified.full_name, verified.email_verified
        )
        user_id = await user_for_identity(state.pool, identity, RequestOrigin.of(ASGIConnection(scope)))
        cache.store_identity(ticket, verified.provider, verified.subject, user_id)
    return user_id


async def caller_state(
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
    row = await accounts_queries.get_caller(state.pool, user_id, jti)
    if row is None:
        return None, False
    user = CachedUser.of(row)
    cache.store_user(ticket, user)
    if jti is not None:
        cache.store_token(ticket, jti, row["revoked"], verified.expires_at)
    return user, row["revoked"]


def _caller_in_scope(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller | None:
    """The caller `authenticate` already established for this request, if it did."""
    cached = connection.scope.get(_SCOPE_KEY)  # type: ignore[call-overload]
    return cached if isinstance(cached, Caller) else None


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    return await authenticate_scope(connection.scope, connection.app.state)


async def authenticate_scope(scope: Any, state: State) -> Caller:
    """`authenticate` on the ASGI scope and the app's state: a Litestar connection object is
    built only where one is needed (a provider's first sign-in, an admin's two-factor rule).
    Building one for every request cost the task list's fast path a few microseconds."""
    cached = scope.get(_SCOPE_KEY)
    if cached is not None:
        if isinstance(cached, Exception):  # what `authenticate_remembered` met for this request
            raise cached
        return cast("Caller", cached)
    token = _bearer_token(scope)
    try:
        verified = await verified_token(state, token)
    except InvalidToken as exc:
        raise NotAuthorizedException(str(exc)) from None
    cache = caller_cache(state)
    user_id = await _resolve_user_id(scope, state, verified, cache)
    user, revoked = await caller_state(state, cache, user_id, verified)
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
        token_issued_at=verified.issued_at,
    )
    if caller.is_admin and state.settings.require_mfa_for_admins:
        await _require_mfa(ASGIConnection(scope), caller)
    scope[_SCOPE_KEY] = caller
    return caller


async def authenticate_remembered(scope: Any, state: State) -> Caller:
    """`authenticate_scope`, keeping a failure on the scope too: the task list's fast path
    (service/tasks/fast_list.py) hands a request it cannot answer to the router, whose route
    then raises the very same exception instead of verifying the token a second time."""
    try:
        return await authenticate_scope(scope, state)
    except Exception as exc:
        scope[_SCOPE_KEY] = exc
        raise


async def _require_mfa(connection: ASGIConnection[Any, Any, Any, Any], caller: Caller) -> None:
    """REQUIRE_MFA_FOR_ADMINS: a local admin without two-factor reaches only the routes that turn
    it on (one query per admin request while the setting is on). Accounts of an identity
    provider sign in there, and their second factor is the provider's to require."""
    if caller.provider != LOCAL_PROVIDER or connection.route_handler.opt.get(MFA_EXEMPT):
        return
    if not await two_factor_queries.mfa_enabled(connection.app.state.pool, caller.id):
        raise PermissionDeniedException(
            "administrators must turn on two-factor sign-in first: POST /api/auth/2fa/totp, "
            "then POST /api/auth/2fa/totp/confirm"
        )


def authenticated_caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """The caller the route's guard established for this request. The task routes call it
    directly rather than through the `caller` dependency: resolving a dependency was about 5 %
    of a task request's CPU (bench/inproc.py)."""
    caller = _caller_in_scope(connection)
    if caller is None:
        raise NotAuthorizedException("not authenticated")  # a route without the hook: fail closed
    return caller


async def provide_caller(request: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """The `caller` dependency: what the route's requirement stored, never a second authentication."""
    return authenticated_caller(request)


CALLER_DEPENDENCY = {"caller": Provide(provide_caller)}
