"""The floor: a bare ASGI callable doing the task list's essential work and nothing else.

Only the physical minimum the contract allows: the token check (the service's own
`verified_token`: pyjwt, HS256, the same required claims, behind the same VerifiedTokenCache)
and the one task-list query, with the same SQL file, the same msgspec encoding, the same uvicorn
settings and garbage-collector tuning as the service. No caller lookup (the service's caller
cache answers that from memory once warm), no framework, no middleware. The service's
throughput and server CPU per request are reported against this. Not part of the service.

Two variants:
- `app` ("floor, token cache"): verified tokens are remembered per worker, as the service does
  (`VerifiedTokenCache`); a repeated token costs a dictionary lookup. This is the like-for-like
  floor, the one the "<= 1.10x the floor's CPU per request" target is measured against, since
  it does the same work as the service.
- `app_no_cache` ("floor, no cache"): the token is verified in full on every request
  (`verify_token`: pyjwt decode of signature, algorithm, issuer, audience, lifetime and the
  required claims), as a floor without the service's cache would. Reported beside the other
  so the cache's share is visible; not the target's reference.

Run: DATABASE_URL=... JWT_SECRET=... uvicorn bench.floor:app --loop uvloop --http httptools
     (or bench.floor:app_no_cache)
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from litestar.datastructures import State

from service.db.pool import create_pool
from service.db.sql import load_sql
from service.security.jwks import jwks_cache
from service.security.tokens import InvalidToken, VerifiedToken
from service.security.verification import verified_token, verify_token
from service.server.lifecycle import tune_garbage_collection
from service.settings import load_settings
from service.tasks.models import Task

LIST_TASKS = load_sql("tasks/list_tasks")
COUNT_TASKS = load_sql("tasks/count_tasks")

_encoder = msgspec.json.Encoder()
_state: dict[str, Any] = {}


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _uncached(state: State, token: str) -> VerifiedToken:
    """Every check on every request: the service's verifier without its VerifiedTokenCache."""
    return await verify_token(state.settings, token, jwks_cache(state))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor with the service's verified-token cache (the like-for-like one)."""
    await _serve(scope, receive, send, verified_token)


async def app_no_cache(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor verifying the token in full on every request."""
    await _serve(scope, receive, send, _uncached)


async def _serve(
    scope: dict[str, Any], receive: Any, send: Any, verify: Callable[[State, str], Awaitable[VerifiedToken]]
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                settings = load_settings()
                # What verified_token reads: the settings, and (for provider tokens only) a client.
                _state["token_state"] = State({"settings": settings, "http": None})
                _state["pool"] = await create_pool(settings, os.environ["DATABASE_URL"])
                tune_garbage_collection()  # as each worker of `service serve` does
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _state["pool"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    token = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            token = value[7:].decode("latin-1")
    try:
        verified = await verify(_state["token_state"], token)
    except InvalidToken:
        await _respond(send, 401, b'{"detail":"invalid token"}')
        return
    user_id = verified.subject
    pool: asyncpg.Pool = _state["pool"]
    async with pool.acquire() as connection:
        rows = await connection.fetch(LIST_TASKS, user_id, None, 50, 0)
        if not rows:
            await connection.fetchval(COUNT_TASKS, user_id, None)
    await _respond(send, 200, _encoder.encode([Task.of(row, user_id) for row in rows]))
