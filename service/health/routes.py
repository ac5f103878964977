"""The operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from service.security.rate_limit import RateLimiting

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


def _token_matches(request: Request[Any, Any, Any], token: str) -> bool:
    """In constant time, also in the length: digests of equal size are compared."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    presented_digest = hashlib.sha256(presented.strip().encode()).digest()
    matches = hmac.compare_digest(presented_digest, hashlib.sha256(token.encode()).digest())
    return scheme.lower() == "bearer" and matches


async def _require_token(request: Request[Any, Any, Any], state: State, token: str) -> None:
    """Each attempt is counted (service.security.rate_limit, `metrics_auth`) before the token is
    checked, and given back when it was right: guesses beyond the limit get 429 unchecked."""
    limiting: RateLimiting | None = state.get("rate_limiting")
    attempt = await limiting.spend_attempt(limiting.metrics_auth, request.scope) if limiting else None
    if not _token_matches(request, token):
        raise NotAuthorizedException("/metrics needs the METRICS_TOKEN as a bearer token")
    if limiting is not None:
        await limiting.refund(attempt)


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
        responses=problem_responses(401, 429, api=False),
    )
    async def metrics(self, request: Request[Any, Any, Any], state: State) -> Response[bytes]:
        """Prometheus text format. With METRICS_TOKEN set, send it as `Authorization: Bearer`; an
        address whose failed attempts pass AUTH_RATE_LIMIT_PER_MINUTE gets 429 for the minute."""
        token = state.settings.metrics_token
        if token:
            await _require_token(request, state, token)
        refresh_pool_gauges(state)
        # As a header: Litestar would append a second charset to a text/ media type.
        return Response(generate_latest(scrape_registry()), headers={"Content-Type": CONTENT_TYPE_LATEST})
