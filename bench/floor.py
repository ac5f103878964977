"""The floor: a bare ASGI callable doing the task list's essential work and nothing else.

Only the physical minimum the contract allows: the token check (the service's own
`verified_token`: pyjwt, HS256, the same required claims, behind the same VerifiedTokenCache)
and the one task-list query, with the same SQL file, the same msgspec encoding, the same uvicorn
settings and garbage-collector tuning as the service. No caller lookup (the service's caller
cache answers that from memory once warm), no framework, no middleware. The service's
throughput and server CPU per request are reported against this. Not part of the service.

Three variants:
- `app` ("floor, token cache"): the physical minimum of a task list: the token check, with
  verified tokens remembered per worker as the service does (`VerifiedTokenCache`; a repeated
  token costs a dictionary lookup), the query and the encoding. No headers beyond the content
  type and length, no ETag, rate limit, request id, log line or metrics.
- `app_no_cache` ("floor, no cache"): the token is verified in full on every request
  (`verify_token`: pyjwt decode of signature, algorithm, issuer, audience, lifetime and the
  required claims), as a floor without the service's cache would. Reported beside the other
  so the cache's share is visible; not the target's reference.

- `app_same_answer` ("floor, same answer"): the task list's whole answer and side effects as
  one straight-line function, with no framework and no layers: the same status, headers (in
  the same order) and body as the service sends to the benchmark's request, and the same work
  beside it: a request id, the client address, the rate limit's count and RateLimit-* headers
  (`RateLimiting.admit`), the token check behind the same cache, the caller from the same
  caller cache (trusted for good: the listener that keeps it trusted runs outside the request
  path), the `user_id` rule, the page query, the route's answer (`list_answer`: body, ETag,
  X-Total-Count), the security and cache headers, the request metrics and the access-log line.
  Each piece is the service's own function, so service over this floor is what our layers,
  Litestar and the protocol's head limits cost around the same work. bench/cpu_per_request.py
  checks before measuring that both send the same header names in the same order and the same
  body. This is the reference of the "<= 1.10x a floor doing the same work" target; the other
  two are reported beside it.

Run: DATABASE_URL=... JWT_SECRET=... uvicorn bench.floor:app --loop uvloop --http httptools
     (or bench.floor:app_no_cache, bench.floor:app_same_answer)
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from litestar.datastructures import State

from service.db.pool import create_pool
from service.db.sql import load_sql
from service.http.client_ip import ClientAddressResolver
from service.http.middleware import RESPONSE_HEADERS_KEY, RequestContextMiddleware
from service.observability.logs import access_log, configure_logging
from service.observability.metrics import RequestMetrics
from service.security.auth import LOCAL_PROVIDER, caller_state, local_user_id
from service.security.caller_cache import CallerCache
from service.security.jwks import jwks_cache
from service.security.rate_limit import RateLimiting
from service.security.tokens import InvalidToken, VerifiedToken
from service.security.verification import verified_token, verify_token
from service.server.lifecycle import tune_garbage_collection
from service.settings import load_settings
from service.tasks import queries as tasks_queries
from service.tasks.models import Task
from service.tasks.routes import DEFAULT_LIMIT, list_answer

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


# ---------------------------------------------------------------------------------------------
# The floor with the same answer: every piece the service's task list does, in one function.


_TEMPLATE = "/api/{user_id:str}/tasks"
_CACHE_CONTROL = (b"cache-control", b"private, no-cache")
_same: dict[str, Any] = {}


async def _start_same_answer(send: Any) -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    _same["pool"] = pool = await create_pool(settings, os.environ["DATABASE_URL"])
    # What verified_token and caller_state read: the settings, the pool (on a cache miss only).
    _same["token_state"] = State({"settings": settings, "http": None, "pool": pool})
    _same["limiting"] = limiting = RateLimiting(settings)
    if limiting.memory is None:
        raise RuntimeError("the same-answer floor counts in memory: unset REDIS_URL")
    _same["addresses"] = ClientAddressResolver(settings.trusted_proxies)
    _same["metrics"] = RequestMetrics() if settings.metrics_enabled else None
    cache = CallerCache(settings.caller_cache_size)
    cache.trust_until(float("inf"))  # the service's listener keeps it trusted outside requests
    _same["callers"] = cache
    # The same security headers, in the same order, as the service's outermost layer adds.
    _same["security_headers"] = RequestContextMiddleware(
        None,  # type: ignore[arg-type]
        production=settings.is_production,
        client_addresses=_same["addresses"],
        metrics=None,
    ).api_headers
    tune_garbage_collection()
    await send({"type": "lifespan.startup.complete"})


async def app_same_answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The task list with the service's whole answer and side effects, no framework or layers.
    Only the benchmark's request is answered in full; anything else gets a bare 404 or 401."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await _start_same_answer(send)
            elif message["type"] == "lifespan.shutdown":
                access_log.flush()
                await _same["pool"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    started = time.perf_counter()
    request_id = os.urandom(16).hex()
    scope["request_id"] = request_id
    client_ip = _same["addresses"].resolve(scope)
    scope["client_ip"] = client_ip
    path: str = scope["path"]
    token = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            token = value[7:].decode("latin-1")
    prefix, _, rest = path.partition("/api/")
    user_id_in_path, _, tail = rest.partition("/")
    if prefix or tail != "tasks" or scope["query_string"]:
        await _respond(send, 404, b'{"detail":"not found"}')
        return
    scope["path_template"] = _TEMPLATE
    await _same["limiting"].admit(scope)  # the count and the RateLimit-* headers (never 429 here)
    try:
        verified = await verified_token(_same["token_state"], token)
    except InvalidToken:
        await _respond(send, 401, b'{"detail":"invalid token"}')
        return
    if verified.provider != LOCAL_PROVIDER:
        await _respond(send, 401, b'{"detail":"only our own tokens here"}')
        return
    # The service's own caller-cache step (one query on a miss: sql/accounts/get_caller.sql).
    user, revoked = await caller_state(
        _same["token_state"], _same["callers"], local_user_id(verified.subject), verified
    )
    if user is None or not user.is_active or revoked or verified.issued_at < user.tokens_valid_after:
        await _respond(send, 401, b'{"detail":"not active or revoked"}')
        return
    if user_id_in_path != verified.subject:
        await _respond(send, 403, b'{"detail":"not yours"}')
        return
    tasks, total = await tasks_queries.list_tasks(
        _same["pool"], user.id, verified.subject, None, DEFAULT_LIMIT, 0
    )
    status, headers, body = list_answer(scope, tasks, total, None, DEFAULT_LIMIT, 0)
    headers.append((b"x-request-id", request_id.encode()))
    headers += _same["security_headers"]
    headers += scope[RESPONSE_HEADERS_KEY]
    headers.append(_CACHE_CONTROL)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    finished = time.perf_counter()
    if _same["metrics"] is not None:
        _same["metrics"].observe(scope, status, started, finished)
    if access_log.enabled():
        access_log.write(
            request_id, scope["method"], path, status, round((finished - started) * 1000, 2), client_ip
        )


# Headers whose values differ per answer or per process; their names and places must still match.
_VARYING = {"date", "x-request-id", "ratelimit-remaining", "ratelimit-reset"}


def check_same_answer(service: str, floor: str, token: str, user_id: str) -> None:
    """Refuse to measure unless the same-answer floor at `floor` sends what the service at
    `service` sends to the benchmark's request: the same status, header names in the same order,
    the same values (but the per-answer ones above) and the same body."""
    import http.client
    from urllib.parse import urlsplit

    answers = []
    for base in (service, floor):
        address = urlsplit(base)
        connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
        connection.request("GET", f"/api/{user_id}/tasks", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        headers = [(k.lower(), "" if k.lower() in _VARYING else v) for k, v in response.getheaders()]
        answers.append((response.status, headers, response.read()))
        connection.close()
    if answers[0] != answers[1]:
        raise SystemExit(
            f"the same-answer floor answers differently:\n  service {answers[0][:2]}\n  floor   {answers[1][:2]}"
        )
    print(f"  same answer: {answers[0][0]}, {len(answers[0][1])} headers, {len(answers[0][2])} bytes")
