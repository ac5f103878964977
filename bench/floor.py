"""The floor: a bare ASGI callable doing the task list's essential work and nothing else.

Only the physical minimum the contract allows: the token check (the service's own
`verified_token`: pyjwt, HS256, the same required claims, behind the same VerifiedTokenCache)
and the one task-list query, with the same SQL file, the same msgspec encoding, the same uvicorn
settings and garbage-collector tuning as the service. No caller lookup (the service's caller
cache answers that from memory once warm), no framework, no middleware. The service's
throughput is reported as a fraction of this. Not part of the service.

Run: DATABASE_URL=... JWT_SECRET=... uvicorn bench.floor:app --loop uvloop --http httptools
"""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import msgspec
from litestar.datastructures import State

from service.db.pool import create_pool
from service.db.sql import load_sql
from service.security.tokens import InvalidToken
from service.security.verification import verified_token
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


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
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
        verified = await verified_token(_state["token_state"], token)
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
