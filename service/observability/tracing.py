"""OpenTelemetry traces, off unless an OTLP endpoint is configured (Settings.tracing_enabled).

Only create_app and the app's lifespan import this module, and only when tracing is on: with no
endpoint set, no OpenTelemetry code runs on the request path and its packages are not even
imported.

When on, each worker process builds its own TracerProvider in create_app (uvicorn's workers are
spawned, so that is after the fork) with a BatchSpanProcessor: spans are queued in memory and
exported by a background thread, so a slow or unreachable collector never delays or fails a
request (the queue drops spans once full).

A request gets a server span from Litestar's OpenTelemetry middleware (OpenTelemetry's ASGI
instrumentation), continuing the caller's W3C `traceparent`/`tracestate`; it is renamed to the
route template once routing has chosen one. Each database statement gets a child span named by
its SQL file (TracedConnection), and each dependency's httpx client (the AI service's, each
identity provider's) client spans that carry the context on to the callee.

Propagation (OwnTraceContext, the process's propagator while tracing is on): a caller's
`traceparent` and `tracestate` are read, so our span continues its trace; what we send the AI
service and the identity providers is our own `traceparent` alone. A client's `tracestate` (its
vendors' data) and `baggage` (any key=value pairs it likes) never reach our dependencies;
baggage is not even read.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
from litestar.plugins.opentelemetry import OpenTelemetryConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor, RequestInfo
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators.textmap import CarrierT, Setter, default_setter
from opentelemetry.sdk.resources import PROCESS_PID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceState,
    format_trace_id,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service import __version__
from service.db.sql import statement_name
from service.settings import Settings

DEFAULT_SERVICE_NAME = "service"
SHUTDOWN_EXPORT_SECONDS = 3.0
# Where the trace id of the request's span waits for the access log and problem bodies.
TRACE_ID_KEY = "trace_id"
# Requests not worth a trace: probes and scrapes, many a minute, all alike.
UNTRACED_PATHS = ["^/health", "^/metrics$"]
# Metrics are Prometheus' job (service.observability.metrics): the instrumentations' own are not recorded.
_NO_METRICS = NoOpMeterProvider()
_HTTP_ROUTE = "http.route"
_REQUEST_ID = "request.id"
# Attributes OpenTelemetry's ASGI instrumentation fills from the raw URL, query string included;
# the access log never records a query string (it can carry an email filter), nor does a span.
_URL_ATTRIBUTES = ("http.url", "http.target", "url.full")
_QUERY_ATTRIBUTE = "url.query"  # under OTEL_SEMCONV_STABILITY_OPT_IN=http
# Span names take the method only from this set, so no client can invent new names.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in _METHODS else "HTTP"


def _sampler(settings: Settings) -> Sampler:
    ratio = 1.0 if settings.otel_traces_sampler_arg is None else settings.otel_traces_sampler_arg
    root: Sampler = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(ratio),
    }[settings.otel_traces_sampler.removeprefix("parentbased_")]
    return ParentBased(root) if settings.otel_traces_sampler.startswith("parentbased_") else root


def _exporter(settings: Settings) -> SpanExporter:
    protocol = settings.otlp_traces_protocol
    traces_endpoint = settings.otel_exporter_otlp_traces_endpoint
    base_endpoint = (settings.otel_exporter_otlp_endpoint or "").rstrip("/")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        endpoint = traces_endpoint or base_endpoint
        return GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    # As the OTLP specification says: the signal path is appended to the generic endpoint only.
    return HttpExporter(endpoint=traces_endpoint or f"{base_endpoint}/v1/traces")


def _resource(settings: Settings) -> Resource:
    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES; the pid tells the workers apart.
    detected = Resource.create({SERVICE_VERSION: __version__, PROCESS_PID: os.getpid()})
    name = settings.otel_service_name
    if name is None and str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        name = DEFAULT_SERVICE_NAME
    return detected.merge(Resource({SERVICE_NAME: name})) if name else detected


def create_tracer_provider(settings: Settings, processor: SpanProcessor | None = None) -> TracerProvider:
    """This worker's provider; `processor` replaces the OTLP batch export (tests). It is stopped
    by stop_tracer_provider, not at exit, where the SDK's own hook could wait 30 s."""
    provider = TracerProvider(
        resource=_resource(settings), sampler=_sampler(settings), shutdown_on_exit=False
    )
    provider.add_span_processor(processor or BatchSpanProcessor(_exporter(settings)))
    return provider


def stop_tracer_provider(provider: TracerProvider) -> None:
    """Export what the batch still holds, waiting SHUTDOWN_EXPORT_SECONDS at most: with the
    collector down, the SDK would retry for up to 30 s and hold the worker's exit back."""
    stopping = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
    stopping.start()
    stopping.join(SHUTDOWN_EXPORT_SECONDS)


class _RouteNamedSpan:
    """Names the server span after the route template once Litestar's router has chosen one
    (`GET /api/{user_id}/tasks`); a path that matched no route keeps the method alone, so raw
    paths never become span names."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = trace.get_current_span()

        async def send_naming_span(message: Message) -> None:
            if message["type"] == "http.response.start":
                template = scope.get("path_template")  # type: ignore[call-overload]
                if template:
                    span.update_name(f"{_method(scope)} {template}")
                    span.set_attribute(_HTTP_ROUTE, template)
            await send(message)

        await self.app(scope, receive, send_naming_span)


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    return _method(scope), {}


def _on_server_span(span: trace.Span, scope: dict[str, Any]) -> None:
    span.set_attribute(_REQUEST_ID, scope.get("request_id", ""))
    path = scope.get("path", "")
    attributes: Mapping[str, Any] = getattr(span, "attributes", None) or {}
    for key in _URL_ATTRIBUTES:
        if key in attributes:
            value = str(attributes[key])
            span.set_attribute(key, value.split("?", 1)[0] if key != "http.target" else path)
    if _QUERY_ATTRIBUTE in attributes:
        span.set_attribute(_QUERY_ATTRIBUTE, "REDACTED")
    context = span.get_span_context()
    if context.is_valid:
        scope[TRACE_ID_KEY] = format_trace_id(context.trace_id)


class OwnTraceContext(TraceContextTextMapPropagator):
    """W3C Trace Context in, our own `traceparent` alone out (no `tracestate`); no baggage either way."""

    _TRACEPARENT = "traceparent"

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        own = SpanContext(
            span_context.trace_id,
            span_context.span_id,
            is_remote=False,
            trace_flags=span_context.trace_flags,
            trace_state=TraceState(),
        )
        super().inject(carrier, trace.set_span_in_context(NonRecordingSpan(own), context), setter)

    @property
    def fields(self) -> set[str]:
        return {self._TRACEPARENT}


def record_exception(exc: BaseException) -> None:
    """An unexpected error on the request's server span: an `exception` event with its type,
    message and stack trace, and the span's status ERROR. Litestar's exception handling turns
    the error into a 500 before the tracing layer could see it, so the handler records it here."""
    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def traced_asgi(app: ASGIApp, provider: TracerProvider) -> ASGIApp:
    """`app` wrapped in Litestar's OpenTelemetry middleware: one server span per request."""
    # The instrumentations read and write context through the process's propagator.
    set_global_textmap(OwnTraceContext())
    config = OpenTelemetryConfig(
        tracer_provider=provider,
        meter_provider=_NO_METRICS,
        scope_span_details_extractor=_span_details,
        server_request_hook_handler=_on_server_span,
        exclude=UNTRACED_PATHS,
        exclude_spans=["receive", "send"],
    )
    return config.middleware_class(_RouteNamedSpan(app), config)


def http_client_tracer(provider: TracerProvider, settings: Settings) -> Callable[[Any], None]:
    """What instruments each dependency's httpx client as it is created (trace_http_client)."""

    def instrument(http: Any) -> None:
        trace_http_client(http, provider, settings)

    return instrument


def trace_http_client(http: Any, provider: TracerProvider, settings: Settings) -> None:
    """Client spans, and our `traceparent` on the way out (OwnTraceContext), for every call of
    one dependency's httpx client: the AI service's, or an identity provider's JWKS."""
    ai_service = settings.ai_service_url.rstrip("/")

    async def name_the_peer(span: trace.Span, request: RequestInfo) -> None:  # AsyncClient: async hook
        peer = "ai-service" if str(request.url).startswith(ai_service) else "identity-provider"
        method = request.method.decode() if isinstance(request.method, bytes) else str(request.method)
        span.set_attribute("peer.service", peer)
        span.update_name(f"{method} {peer}")

    HTTPXClientInstrumentor.instrument_client(
        http, tracer_provider=provider, meter_provider=_NO_METRICS, request_hook=name_the_peer
    )


_DB_ATTRIBUTES = {"db.system.name": "postgresql", "db.system": "postgresql"}


def _traced(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def traced(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not trace.get_current_span().is_recording():
            # Outside a request (pool start-up), or in a request the sampler left out.
            return await method(self, query, *args, **kwargs)
        # The statement text has $n placeholders only: parameter values are never recorded.
        with self.tracer.start_as_current_span(
            statement_name(query),
            kind=SpanKind.CLIENT,
            attributes={**_DB_ATTRIBUTES, "db.query.text": query},
        ):
            return await method(self, query, *args, **kwargs)

    traced.__name__ = method.__name__
    return traced


def traced_connection_class(provider: TracerProvider) -> type[asyncpg.Connection]:
    """An asyncpg connection class whose statements each get a span named by their SQL file
    (`tasks/list_tasks`). OpenTelemetry's asyncpg instrumentation names spans by the SQL verb and
    patches every connection of the process; this is the pool's own class instead."""
    return type(
        "TracedConnection",
        (asyncpg.Connection,),
        {
            "__slots__": (),
            "tracer": provider.get_tracer("service.db", __version__),
            **{
                name: _traced(getattr(asyncpg.Connection, name))
                for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval", "fetchmany")
            },
        },
    )
