"""The operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException
from litestar.response import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.db.migrations import migration_ids
from service.health import queries
from service.http.errors import DEPENDENCY_RETRY_AFTER_SECONDS, ServiceUnavailable
from service.http.openapi import METRICS_SCHEME, PublicOperation, problem_responses
from service.observability.metrics import refresh_pool_gauges, scrape_registry
from service.server.lifecycle import SHUTTING_DOWN

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
            applied = await queries.applied_migrations(state.pool, READY_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure to answer is "not ready", never a 500
            raise ServiceUnavailable(f"database not ready: {type(exc).__name__}") from exc
        pending = SHIPPED_MIGRATIONS.difference(applied)
        if pending:
            raise ServiceUnavailable(
                f"database schema not up to date: {len(pending)} migration(s) pending, "
                f"from {min(pending)}; run `service migrate`"
            )
        return Response(HealthStatus(status="ready"))


def _require_token(request: Request[Any, Any, Any], token: str) -> None:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise NotAuthorizedException("/metrics needs the METRICS_TOKEN as a bearer token")


class MetricsController(Controller):
    path = "/metrics"
    tags = ["operations"]

    @get(
        "/",
        operation_id="getMetrics",
        summary="Prometheus metrics",
        # Open unless the operator set METRICS_TOKEN: no credentials, or that token.
        security=[{}, {METRICS_SCHEME: []}],
        media_type=CONTENT_TYPE_LATEST,
        responses=problem_responses(401, api=False),
    )
    async def metrics(self, request: Request[Any, Any, Any], state: State) -> Response[bytes]:
        """Prometheus text format. With METRICS_TOKEN set, send it as `Authorization: Bearer`."""
        token = state.settings.metrics_token
        if token:
            _require_token(request, token)
        refresh_pool_gauges(state)
        # As a header: Litestar would append a second charset to a text/ media type.
        return Response(generate_latest(scrape_registry()), headers={"Content-Type": CONTENT_TYPE_LATEST})
