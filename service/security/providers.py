"""Access tokens from external identity providers (Supabase Auth, Better Auth); their users are
provisioned by service/identities/provisioning.py.

Which verifier a token goes to is decided by our configuration and the token's unverified `iss`,
never by its `alg` header (see `choose_provider`). Each verifier then accepts a fixed list of
algorithms: a key from the provider's JWKS (picked by `kid`) with that key's own algorithm, or
else the provider's shared secret with HS256 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import jwt
import msgspec
from litestar import Litestar

from service.http.errors import ServiceUnavailable
from service.security.jwks import NO_USABLE_KEY, JwksCache, JwksUnavailable, KeySetProblem, jwks_cache
from service.security.tokens import InvalidToken, VerifiedToken
from service.settings import Settings

log = logging.getLogger("service.security.providers")

SUPABASE = "supabase"
BETTER_AUTH = "better-auth"
SUPABASE_AUDIENCE = "authenticated"
SUPABASE_JWKS_ALGORITHMS = frozenset({"ES256", "RS256"})
# Every `jwks.keyPairConfig.alg` the jwt plugin offers (better-auth 1.7).
BETTER_AUTH_JWKS_ALGORITHMS = frozenset({"EdDSA", "ES256", "ES512", "RS256", "PS256"})
BETTER_AUTH_JWKS_PATH = "/api/auth/jwks"
SHARED_SECRET_ALGORITHM = "HS256"  # noqa: S105 - an algorithm name, not a secret
# Supabase's project API keys are JWTs too; they name a role, not a user.
SUPABASE_API_KEY_ROLES = frozenset({"anon", "service_role"})
# Headers that name a key by URL or embed one: trusting them lets the token choose its own key.
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c")
LEEWAY_SECONDS = 30
MAX_SUBJECT_LENGTH = 255
MAX_FULL_NAME_LENGTH = 200  # users.full_name's CHECK
KEY_CHECK_STATE_KEY = "provider_key_check"
TOKEN_ID_NAMESPACE = uuid.UUID("5d0f7c1e-9a8b-4c2d-8e3f-6a7b8c9d0e1f")


class Provider(msgspec.Struct, frozen=True):
    """How one provider's tokens are verified: where its keys are and which claims must match."""

    name: str
    jwks_url: str | None
    jwks_algorithms: frozenset[str]
    secret: str | None
    issuer: str | None
    audience: str | None
    jwks_variable: str = ""  # the setting the JWKS URL comes from, for start-up warnings


def _base_url(url: str) -> str:
    return url.rstrip("/")


def _origin(url: str) -> str:
    """What Better Auth puts in `iss` and `aud` by default: `new URL(baseURL).origin`."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == {"http": 80, "https": 443}.get(parts.scheme.lower()):
        return f"{parts.scheme.lower()}://{host}"
    return f"{parts.scheme.lower()}://{host}:{port}"


def better_auth_issuer(settings: Settings) -> str | None:
    if not settings.better_auth_url:
        return None
    return settings.better_auth_issuer or _origin(settings.better_auth_url)


def supabase_issuer(settings: Settings) -> str | None:
    return f"{_base_url(settings.supabase_url)}/auth/v1" if settings.supabase_url else None


def _supabase(settings: Settings) -> Provider:
    issuer = supabase_issuer(settings)
    return Provider(
        name=SUPABASE,
        jwks_url=f"{issuer}/.well-known/jwks.json" if issuer else None,
        jwks_algorithms=SUPABASE_JWKS_ALGORITHMS,
        secret=settings.supabase_jwt_secret,
        issuer=issuer,
        audience=SUPABASE_AUDIENCE,
        jwks_variable="SUPABASE_URL",
    )


def _better_auth(settings: Settings, *, with_issuer: bool) -> Provider:
    url = settings.better_auth_url if with_issuer else None
    if not url:
        secret = settings.better_auth_secret
        return Provider(BETTER_AUTH, None, BETTER_AUTH_JWKS_ALGORITHMS, secret, issuer=None, audience=None)
    return Provider(
        name=BETTER_AUTH,
        jwks_url=settings.better_auth_jwks_url or f"{_base_url(url)}{BETTER_AUTH_JWKS_PATH}",
        jwks_algorithms=BETTER_AUTH_JWKS_ALGORITHMS,
        secret=settings.better_auth_secret,
        issuer=better_auth_issuer(settings),
        audience=settings.better_auth_audience or _origin(url),
        jwks_variable="BETTER_AUTH_JWKS_URL" if settings.better_auth_jwks_url else "BETTER_AUTH_URL",
    )


def choose_provider(settings: Settings, issuer: object) -> Provider | None:
    """The one verifier for a token whose unverified `iss` is `issuer`, or None to refuse it.

    1. `iss` = SUPABASE_URL + "/auth/v1" -> Supabase (its JWKS, else SUPABASE_JWT_SECRET).
    2. `iss` = BETTER_AUTH_ISSUER (default: BETTER_AUTH_URL's origin) -> Better Auth (its JWKS,
       else BETTER_AUTH_SECRET).
    3. no `iss` and BETTER_AUTH_SECRET set -> Better Auth's shared secret (TaskFlow's tokens).
    4. otherwise, SUPABASE_JWT_SECRET set without SUPABASE_URL -> Supabase's legacy secret,
       which checks `aud` but cannot check an issuer it was not told.
    """
    supabase_iss = supabase_issuer(settings)
    if supabase_iss is not None and issuer == supabase_iss:
        return _supabase(settings)
    better_auth_iss = better_auth_issuer(settings)
    if better_auth_iss is not None and issuer == better_auth_iss:
        return _better_auth(settings, with_issuer=True)
    if issuer is None and settings.better_auth_secret:
        return _better_auth(settings, with_issuer=False)
    if settings.supabase_jwt_secret and not settings.supabase_url:
        return _supabase(settings)
    return None


def _key_id(token: str) -> str | None:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("invalid token") from None
    if any(name in header for name in FORBIDDEN_HEADERS):
        raise InvalidToken("token headers that name their own key are not accepted")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("invalid token")
    return kid


async def verify_provider_token(provider: Provider, token: str, keys: JwksCache) -> VerifiedToken:
    """Verify a token with the provider's published key named by `kid`, else its shared secret."""
    kid = _key_id(token)
    outage: JwksUnavailable | None = None
    if provider.jwks_url and kid is not None:
        try:
            public_key = await keys.signing_key(provider.jwks_url, kid)
        except JwksUnavailable as exc:
            public_key, outage = None, exc
        if public_key is not None and public_key.algorithm_name in provider.jwks_algorithms:
            return _verified(provider, token, public_key, public_key.algorithm_name)
    if provider.secret:
        try:
            return _verified(provider, token, provider.secret, SHARED_SECRET_ALGORITHM)
        except InvalidToken:
            if outage is None:
                raise
    if outage is not None:
        raise ServiceUnavailable(
            f"cannot reach the {provider.name} signing keys; retry shortly", retry_after=outage.retry_after
        ) from None
    raise InvalidToken("token is not signed by a known key")


def _verified(provider: Provider, token: str, key: jwt.PyJWK | str, algorithm: str) -> VerifiedToken:
    required = ["sub", "exp", "iat"]
    if provider.issuer:
        required.append("iss")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=provider.audience,
            issuer=provider.issuer,
            options={"require": required},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"token has no '{exc.claim}' claim") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("token audience is not accepted") from None
    except jwt.PyJWTError:
        raise InvalidToken("invalid token") from None
    if provider.name == SUPABASE and claims.get("role") in SUPABASE_API_KEY_ROLES:
        raise InvalidToken("a Supabase API key is not a user token")
    return VerifiedToken(
        provider=provider.name,
        subject=_subject(claims["sub"]),
        issued_at=float(claims["iat"]),
        expires_at=float(claims["exp"]),
        jti=_token_id(provider.name, claims.get("jti"), token),
        email=_email_or_none(claims.get("email")),
        full_name=_full_name_or_none(provider, claims),
        email_verified=_email_verified(claims),
    )


def _email_verified(claims: dict[str, Any]) -> bool:
    """`email_verified` (OIDC), Better Auth's `emailVerified`, or Supabase's copy in user_metadata;
    only a JSON true counts."""
    metadata = claims.get("user_metadata")
    nested = metadata.get("email_verified") if isinstance(metadata, dict) else None
    return any(value is True for value in (claims.get("email_verified"), claims.get("emailVerified"), nested))


def _subject(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_SUBJECT_LENGTH or "\x00" in value:
        raise InvalidToken("invalid token subject")
    return value


def _token_id(provider: str, jti: Any, token: str) -> uuid.UUID:
    """The id logout revokes the token by: its `jti` when that is a UUID, else a UUID derived
    from the provider's `jti` or, when it has none (Better Auth issues none), from the token
    itself. So logout ends any provider token here, not only those carrying a UUID `jti`."""
    if isinstance(jti, str) and jti:
        try:
            return uuid.UUID(jti)
        except ValueError:
            return uuid.uuid5(TOKEN_ID_NAMESPACE, f"{provider}:jti:{jti}")
    return uuid.uuid5(TOKEN_ID_NAMESPACE, f"{provider}:sha256:{hashlib.sha256(token.encode()).hexdigest()}")


def _full_name_or_none(provider: Provider, claims: dict[str, Any]) -> str | None:
    """Better Auth's `name` (its user object is the payload); Supabase's `user_metadata`, where
    OAuth sign-ins put `full_name` and some put only `name`."""
    if provider.name == SUPABASE:
        metadata = claims.get("user_metadata")
        if not isinstance(metadata, dict):
            return None
        candidates = [metadata.get("full_name"), metadata.get("name")]
    else:
        candidates = [claims.get("name")]
    for value in candidates:
        if isinstance(value, str) and value.strip() and "\x00" not in value:
            return value.strip()[:MAX_FULL_NAME_LENGTH]
    return None


def _email_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip()
    if not 3 <= len(email) <= 320 or "@" not in email or "\x00" in email:
        return None
    return email


def configured_key_sets(settings: Settings) -> list[tuple[Provider, str]]:
    """The providers whose JWKS this configuration fetches, with its URL."""
    providers = [_supabase(settings), _better_auth(settings, with_issuer=True)]
    return [(provider, provider.jwks_url) for provider in providers if provider.jwks_url]


def _startup_warning(provider: Provider, url: str, problem: KeySetProblem) -> str | None:
    """What an operator should read about this key set at start-up, if anything."""
    where = f"{provider.jwks_variable}: the {provider.name} signing keys at {url}"
    if not problem.misconfigured:
        return f"{where} cannot be fetched ({problem.reason}); its tokens get 503 until they can"
    if problem.reason == NO_USABLE_KEY and provider.secret:
        return None  # a project still on its shared secret publishes an empty set
    hint = {
        SUPABASE: "SUPABASE_URL must be the project URL, without a path",
        BETTER_AUTH: "set BETTER_AUTH_JWKS_URL to {baseURL origin}{basePath}{jwks.jwksPath} "
        "of the frontend's auth config, by default {BETTER_AUTH_URL}/api/auth/jwks",
    }[provider.name]
    return f"{where} cannot be used ({problem.reason}): a configuration error; {hint}"


async def check_key_sets(settings: Settings, keys: JwksCache) -> None:
    """Fetch each configured JWKS once, warming the cache, and warn about each that is unusable."""
    key_sets = configured_key_sets(settings)
    problems = await asyncio.gather(*(keys.load(url) for _, url in key_sets))
    for (provider, url), problem in zip(key_sets, problems, strict=True):
        warning = _startup_warning(provider, url, problem) if problem is not None else None
        if warning is not None:
            log.warning("%s", warning)


@contextlib.asynccontextmanager
async def key_check_at_startup(app: Litestar) -> AsyncIterator[None]:
    """Start-up never waits for a provider: the check runs beside the first requests."""
    check = asyncio.create_task(check_key_sets(app.state.settings, jwks_cache(app.state)))
    app.state[KEY_CHECK_STATE_KEY] = check
    try:
        yield
    finally:
        check.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await check
