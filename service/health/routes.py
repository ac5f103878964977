"""Liveness and readiness."""

from __future__ import annotations

import asyncpg
import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.response import Response

from service.db.migrations import migration_ids
from service.db.pool import load_sql
from service.http.errors import DEPENDENCY_RETRY_AFTER_SECONDS, ServiceUnavailable, problem_responses
from service.http.openapi import PublicOperation
from service.server.lifecycle import SHUTTING_DOWN

APPLIED_MIGRATIONS = load_sql("health/applied_migrations")
READY_TIMEOUT_SECONDS = 2.0
SHIPPED_MIGRATIONS = migration_ids()


class HealthStatus(msgspec.Struct):
    status: str


class HealthController(Controller):
    path = "/health"
    tags = ["operations"]

    @get(
        "/",
        operation_id="getHealth",
        operation_class=PublicOperation,
        summary="Liveness: the process answers; never touches the database",
    )
    async def health(self) -> HealthStatus:
        return HealthStatus(status="healthy")

    @get(
        "/ready",
        operation_id="getReadiness",
        operation_class=PublicOperation,
        summary="Readiness: the database answers and has every migration this version needs",
        responses=problem_responses(503, api=False),
    )
    async def ready(self, state: State) -> Response[HealthStatus]:
        """503 while shutting down, while the database cannot answer, and while migrations this
        version ships are not applied yet (`service migrate` has not run): a new replica stays out
        of the load balancer until the release step has migrated the database."""
        if SHUTTING_DOWN.is_set():
            raise ServiceUnavailable("shutting down", retry_after=DEPENDENCY_RETRY_AFTER_SECONDS)
        try:
            async with state.pool.acquire(timeout=READY_TIMEOUT_SECONDS) as connection:
                rows = await connection.fetch(APPLIED_MIGRATIONS, timeout=READY_TIMEOUT_SECONDS)
        except asyncpg.UndefinedTableError:  # yoyo has never run here
            rows = []
        except Exception as exc:  # any failure to answer is "not ready", never a 500
            raise ServiceUnavailable(f"database not ready: {type(exc).__name__}") from exc
        pending = SHIPPED_MIGRATIONS.difference(row["migration_id"] for row in rows)
        if pending:
            raise ServiceUnavailable(
                f"database schema not up to date: {len(pending)} migration(s) pending, "
                f"from {min(pending)}; run `service migrate`"
            )
        return Response(HealthStatus(status="ready"))
