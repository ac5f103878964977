"""Which verifier a token goes to (our own, or a provider's, chosen by configuration and the
token's issuer, never by its `alg`), and the per-worker cache of tokens that passed."""

from __future__ import annotations

import base64
import binascii
import time

import msgspec
from litestar.datastructures import State

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

VERIFIED_TOKENS_KEY = "verified_tokens"


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
