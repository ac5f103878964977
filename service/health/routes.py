"""Liveness and readiness."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.response import Response

from service.db import load_sql
from service.errors import DEPENDENCY_RETRY_AFTER_SECONDS, ServiceUnavailable, problem_responses
from service.lifecycle import SHUTTING_DOWN

PING = load_sql("health/ping")
READY_TIMEOUT_SECONDS = 2.0


class HealthStatus(msgspec.Struct):
    status: str


class HealthController(Controller):
    path = "/health"
    tags = ["Health"]

    @get("/", summary="Liveness: the process answers; never touches the database")
    async def health(self) -> HealthStatus:
        return HealthStatus(status="healthy")

    @get(
        "/ready",
        summary="Readiness: a query on the database succeeds",
        responses=problem_responses(503, api=False),
    )
    async def ready(self, state: State) -> Response[HealthStatus]:
        if SHUTTING_DOWN.is_set():
            raise ServiceUnavailable("shutting down", retry_after=DEPENDENCY_RETRY_AFTER_SECONDS)
        try:
            async with state.pool.acquire(timeout=READY_TIMEOUT_SECONDS) as connection:
                await connection.fetchval(PING, timeout=READY_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure to answer is "not ready", never a 500
            raise ServiceUnavailable(f"database not ready: {type(exc).__name__}") from exc
        return Response(HealthStatus(status="ready"))
