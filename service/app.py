"""create_app(settings) -> Litestar: the one place that wires domains, plugins and middleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from litestar import Litestar, Response, Router
from litestar.config.cors import CORSConfig
from litestar.enums import MediaType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler, Scope

from service import __version__
from service.accounts.recovery import RESET_REQUEST_JOB, ResetRequests
from service.accounts.recovery_routes import AccountRecoveryController
from service.accounts.routes import AuthController
from service.audit.routes import AuditEventsController
from service.compat.litestar import cors_only_with_origin, replace_handler_function, without_before_request
from service.db.pool import close_pool, create_pool, resolve_database_url
from service.health.routes import HealthController, MetricsController
from service.http.client_ip import ClientAddressResolver
from service.http.compression import Compression
from service.http.docs import DocsController
from service.http.exception_handlers import ERROR_TRACKER_KEY, EXCEPTION_HANDLERS
from service.http.middleware import RequestContextMiddleware
from service.http.openapi import SECURITY_SCHEMES, TAGS, ClosedStructSchemaPlugin
from service.integrations.ai_service import ai_service
from service.mail.delivery import MailDelivery
from service.mail.outbox import DELIVER_MAIL
from service.mail.routes import MailController
from service.mail.transport import transport_for
from service.mail.worker import BackgroundWorker, JobHandler
from service.observability import metrics
from service.observability.logs import access_log, configure_logging
from service.retention.prune import prune_periodically
from service.scans.routes import scan_handlers
from service.security.auth import CALLER_CACHE_KEY
from service.security.caller_cache import CallerCache
from service.security.caller_listener import CALLER_LISTENER_KEY, CallerListener, listen_url
from service.security.jwks import STATE_KEY as JWKS_STATE_KEY
from service.security.jwks import JwksCache
from service.security.providers import key_check_at_startup
from service.security.rate_limit import RateLimiting
from service.server.lifecycle import install_drain_handler, tune_garbage_collection
from service.sessions.routes import SessionsController
from service.settings import Settings, SettingsError, load_settings
from service.tasks.fast_list import fast_task_list
from service.tasks.routes import TaskController
from service.two_factor.routes import TwoFactorController
from service.users.routes import UsersController, UserSessionsController

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

STATIC_DIR = Path(__file__).parent / "static"
JSON_BODY_LIMIT_BYTES = 1024 * 1024
# Register, login, refresh, logout and PATCH /me carry a few short fields: at most about 5.5 KiB
# even with every character escaped (a 200-character name and two 128-character passwords as
# JSON surrogate escapes, or a 320-character login name percent-encoded). A larger body is refused
# by its Content-Length or as it streams, before anything parses it: a 1 MiB login form of tiny
# fields had taken 0.3-1.3 s of the event loop to parse.
AUTH_BODY_LIMIT_BYTES = 8 * 1024


def api_handlers(settings: Settings) -> list[ControllerRouterHandler]:
    """Every controller served under both /api and /api/v1."""
    auth = Router(
        path="/",
        route_handlers=[AuthController, AccountRecoveryController, TwoFactorController],
        request_max_body_size=AUTH_BODY_LIMIT_BYTES,
    )
    return [
        auth,
        SessionsController,
        UsersController,
        UserSessionsController,
        TaskController,
        *scan_handlers(settings),
        AuditEventsController,
        MailController,
    ]


def background_jobs(pool: asyncpg.Pool, settings: Settings) -> dict[str, JobHandler]:
    """The jobs a background worker runs (in `service serve` workers and in `service worker`)."""
    return {
        DELIVER_MAIL: MailDelivery(pool, settings, transport_for(settings)),
        RESET_REQUEST_JOB: ResetRequests(pool, settings),
    }


def background_worker(pool: asyncpg.Pool, settings: Settings, url: str) -> BackgroundWorker:
    """Jobs are taken on a connection of their own, which LISTENs: behind a transaction pooler,
    DATABASE_LISTEN_URL's direct address."""
    pooled = settings.database_pooler == "transaction" and not settings.database_listen_url
    return BackgroundWorker(
        settings.database_listen_url or url, background_jobs(pool, settings), pool, pooled=pooled
    )


def _openapi(settings: Settings) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Service API",
        version=__version__,
        description=(
            "One backend for the influencer CRM, TaskFlow and risk-scan frontends. "
            "Every /api route is also served under /api/v1 (omitted here to keep operation ids unique). "
            "Errors are application/problem+json with a `detail` field."
        ),
        path="/schema",
        render_plugins=[JsonRenderPlugin()],
        components=Components(security_schemes=SECURITY_SCHEMES),
        tags=TAGS,
        use_handler_docstrings=True,
    )


def _lifespan(  # type: ignore[no-untyped-def]
    settings: Settings, listener: CallerListener, tracer_provider: TracerProvider | None, owns_provider: bool
):
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        url, embedded = resolve_database_url(settings)
        connection_class = asyncpg.Connection
        # One HTTP client per dependency, each with its own connections and timeout: the AI
        # service's here (`http`), each identity provider's in the JWKS cache.
        http = ai_service.create_client(settings)
        on_client = None
        if tracer_provider is not None:
            from service.observability import tracing

            connection_class = tracing.traced_connection_class(tracer_provider)
            on_client = tracing.http_client_tracer(tracer_provider, settings)
            on_client(http)
        provider_keys = JwksCache(on_client=on_client)
        pool = await create_pool(settings, url, connection_class)
        app.state.update(pool=pool, http=http, settings=settings)
        app.state[JWKS_STATE_KEY] = provider_keys
        app.state.update({CALLER_CACHE_KEY: listener.cache, CALLER_LISTENER_KEY: listener})
        caller_listen_url = listen_url(settings, url)
        if caller_listen_url is not None:
            await listener.start(caller_listen_url)
        metrics.worker_started(app.state)
        pruner = (
            asyncio.create_task(prune_periodically(pool, url, settings, settings.prune_interval_minutes * 60))
            if settings.prune_interval_minutes
            else None
        )
        worker = background_worker(pool, settings, url) if settings.mail_worker == "on" else None
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                await worker.stop()
            if pruner is not None:
                pruner.cancel()
                with suppress(asyncio.CancelledError):
                    await pruner
            metrics.worker_stopped()
            await listener.stop()
            await http.aclose()
            await provider_keys.aclose()
            await close_pool(pool)
            access_log.flush()
            if owns_provider and tracer_provider is not None:
                from service.observability import tracing

                tracing.stop_tracer_provider(tracer_provider)
            if embedded is not None:
                embedded.stop_if_started_here()

    return lifespan


def _options_answer(allow: str):  # type: ignore[no-untyped-def]
    def options_handler(scope: Scope) -> Response[None]:
        return Response(content=None, status_code=204, headers={"Allow": allow}, media_type=MediaType.TEXT)

    return options_handler


def _allow_every_method_on_options(app: Litestar) -> None:
    """Litestar 2 answers OPTIONS with the methods of whichever handler of a path it registered
    first (litestar-org/litestar#4169, fixed only in 3.0; service/compat/litestar.py), so
    `OPTIONS /api/auth/me` said `GET, OPTIONS` without PATCH. Give each generated OPTIONS handler
    the full method list of its path, and no `before_request` hook: it would inherit its
    controller's `access(...)` and answer 401 without a token, though an OPTIONS answer reveals
    nothing (tests/architecture/test_route_access.py walks every /api route)."""
    for route in app.routes:
        if isinstance(route, HTTPRoute) and "OPTIONS" in route.route_handler_map:
            handler, _ = route.route_handler_map["OPTIONS"]
            if handler.handler_name == "options_handler":
                replace_handler_function(handler, _options_answer(", ".join(sorted(route.methods))))
                without_before_request(handler)


def _start_error_tracking(app: Litestar, settings: Settings) -> None:
    try:
        from service.observability.error_tracking import ErrorTracker
    except ImportError as exc:
        raise SettingsError(
            "SENTRY_DSN is set but sentry-sdk is not installed: install the `sentry` extra "
            "(pip install 'service[sentry]', or uv sync --extra sentry)"
        ) from exc
    tracker = ErrorTracker(settings)
    app.state[ERROR_TRACKER_KEY] = tracker
    app.on_shutdown.append(tracker.close)


def create_served_app() -> Litestar:
    """The factory `service serve` gives uvicorn: create_app, plus SIGTERM draining and a tuned
    garbage collector in each worker (service.server.lifecycle)."""
    settings = load_settings()
    app = create_app(settings)
    app.on_startup.append(lambda: install_drain_handler(settings.drain_seconds))
    app.on_startup.append(tune_garbage_collection)  # last: after the pool and every other startup step
    return app


def create_app(
    settings: Settings | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    task_list_fast_path: bool = True,
) -> Litestar:
    """`tracer_provider` overrides the one OTEL_* settings would build (tests record spans in memory);
    `task_list_fast_path=False` leaves the task list to Litestar's router alone (the parity tests
    compare both)."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_format)
    owns_provider = tracer_provider is None and settings.tracing_enabled
    if owns_provider:
        from service.observability import tracing

        tracer_provider = tracing.create_tracer_provider(settings)
    handlers = api_handlers(settings)
    rate_limiting = RateLimiting(settings)
    caller_listener = CallerListener(CallerCache(settings.caller_cache_size))
    app = Litestar(
        route_handlers=[
            HealthController,
            DocsController,
            *([MetricsController] if settings.metrics_enabled else []),
            Router(path="/api", route_handlers=handlers),
            Router(path="/api/v1", route_handlers=handlers, include_in_schema=False),
            create_static_files_router(path="/static", directories=[STATIC_DIR], include_in_schema=False),
        ],
        lifespan=[
            _lifespan(settings, caller_listener, tracer_provider, owns_provider),
            rate_limiting.lifespan,
            key_check_at_startup,
        ],
        middleware=rate_limiting.middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        cors_config=CORSConfig(
            allow_origins=list(settings.browser_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=list(settings.browser_request_headers),
            expose_headers=[
                "X-Request-ID",
                "ETag",
                "Retry-After",
                "WWW-Authenticate",
                "Location",
                "Link",
                "X-Total-Count",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "RateLimit-Policy",
            ],
            max_age=600,
        ),
        openapi_config=_openapi(settings),
        plugins=[ClosedStructSchemaPlugin()],
        request_max_body_size=JSON_BODY_LIMIT_BYTES,
        logging_config=None,
        debug=False,
    )
    _allow_every_method_on_options(app)
    if settings.sentry_dsn:
        _start_error_tracking(app, settings)
    # Litestar's CORS layer only for requests with an Origin header (service/compat/litestar.py).
    # Speed over the framework idiom: the task list answered below the router (service/tasks/fast_list.py)
    # costs 218-229 us of CPU per request against 259-277 through it (bench/cpu_per_request.py).
    handler = cors_only_with_origin(app.asgi_handler)
    if task_list_fast_path:
        handler = fast_task_list(app, handler)
    if tracer_provider is not None:
        from service.observability import tracing

        handler = tracing.traced_asgi(handler, tracer_provider, settings)
    # Outermost, so 404s, 405s and CORS preflights carry the request id and headers too, and are
    # counted in the metrics with their final status. Compression, read-your-writes and the
    # counting of the router's 404s and 405s against the rate limit are hooks of this one layer.
    app.asgi_handler = RequestContextMiddleware(
        handler,
        production=settings.is_production,
        client_addresses=ClientAddressResolver(settings.trusted_proxies),
        metrics=metrics.RequestMetrics() if settings.metrics_enabled else None,
        compression=(
            Compression(min_bytes=settings.compression_min_bytes) if settings.compression_min_bytes else None
        ),
        hold=caller_listener.caught_up,
        unrouted=rate_limiting.unrouted.refusal,
    )
    return app
