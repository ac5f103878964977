"""OpenTelemetry traces, off unless an OTLP endpoint is configured (Settings.tracing_enabled).

Only create_app and the app's lifespan import this module, and only when tracing is on: with no
endpoint set, no OpenTelemetry code runs on the request path and its packages are not even
imported.

When on, each worker process builds its own TracerProvider in create_app (uvicorn's workers are
spawned, so that is after the fork) with the SDK's batch span processor (ExportQueue, which
drops a span that finds the queue full for a counter increment): spans are queued in memory and
exported by a background thread, so a slow or unreachable collector never delays or fails a
request.

Sampling is decided first, for every request, by TracedAsgi (our own server span layer; it
replaced OpenTelemetry's ASGI instrumentation, which did most of its work for every request,
sampled or not): from the caller's W3C `traceparent`, parsed here, and the configured sampler,
with the SDK samplers' rules. A request left out keeps its trace id in the request scope and
nothing else: no span objects, no attributes, no wrapped send, nothing in OpenTelemetry's
context until it calls a dependency, when an httpx request hook (continue_unsampled_trace)
puts a non-recording span with the trace id and flags 00 in the context. A sampled request
gets one server span, renamed to the route template once routing has chosen one; each
database statement gets a child span named by its SQL file (TracedConnection). These are the
service's own light spans (_Span), handed to the span processor as the SDK's ReadableSpans when
they end. Each dependency's httpx client (the AI service's, each identity
provider's) has OpenTelemetry's httpx instrumentation: client spans that carry the context on.

Propagation: a caller's `traceparent` and `tracestate` are read (TracedAsgi), so our span
continues its trace; what we send (OwnTraceContext, the process's propagator while tracing is
on, which the httpx instrumentation writes through) to the AI
service and the identity providers is our own `traceparent` alone. A client's `tracestate` (its
vendors' data) and `baggage` (any key=value pairs it likes) never reach our dependencies;
baggage is not even read.
"""

from __future__ import annotations

import os
import re
import threading
import traceback
import weakref
from collections.abc import Awaitable, Callable, Mapping
from random import getrandbits
from time import time_ns
from typing import Any

import asyncpg
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor, RequestInfo
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators.textmap import CarrierT, Setter, default_setter
from opentelemetry.sdk.resources import PROCESS_PID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service import __version__
from service.db.sql import statement_name
from service.observability.export_queue import ExportQueue
from service.observability.logs import request_context
from service.settings import Settings

DEFAULT_SERVICE_NAME = "service"
SHUTDOWN_EXPORT_SECONDS = 3.0
# Where the trace id of the request's span waits for the access log and problem bodies.
TRACE_ID_KEY = "trace_id"
# Where a sampled request's server span waits for the statement spans (absent when not sampled).
SERVER_SPAN_KEY = "otel_server_span"
# Metrics are Prometheus' job (service.observability.metrics): the instrumentations' own are not recorded.
_NO_METRICS = NoOpMeterProvider()
# The server span's attributes (the older HTTP semantic conventions' names, as OpenTelemetry's
# ASGI instrumentation wrote them). No URL with its query string: it can carry an email filter.
_HTTP_METHOD = "http.method"
_HTTP_SCHEME = "http.scheme"
_HTTP_TARGET = "http.target"
_HTTP_ROUTE = "http.route"
_HTTP_STATUS_CODE = "http.status_code"
_REQUEST_ID = "request.id"
# Span names take the method only from this set, so no client can invent new names.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# W3C Trace Context: version-traceid-parentid-flags, lowercase hex, optional whitespace around;
# a version after 00 may add fields ("-..."). Limits as OpenTelemetry's own propagator has them.
_TRACEPARENT = re.compile(
    rb"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)", re.DOTALL
)
_TRACEPARENT_MAX_BYTES = 512
_TRACESTATE_MAX_CHARS = 512
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16
_LOW_64 = (1 << 64) - 1
_RANDOM = TraceFlags.RANDOM_TRACE_ID
# A fresh trace the sampler left out: flags 02 (random trace id, not sampled), as the SDK sets them.
_RANDOM_UNSAMPLED = TraceFlags(TraceFlags.RANDOM_TRACE_ID)
_SAMPLED = TraceFlags.SAMPLED
_RANDOM_SAMPLED = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_NO_TRACESTATE = TraceState()
_UNSET = Status(StatusCode.UNSET)
_ERROR = Status(StatusCode.ERROR)
_EMPTY = Context()


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
    from service.observability.otlp_encoding import LeanOtlpSpanExporter

    # As the OTLP specification says: the signal path is appended to the generic endpoint only.
    # Our own encoding of the batch (a sixth of the library's cost), sent by the library's client.
    return LeanOtlpSpanExporter(endpoint=traces_endpoint or f"{base_endpoint}/v1/traces")


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
        resource=_resource(settings),
        sampler=_sampler(settings),
        shutdown_on_exit=False,
    )
    processor = processor or ExportQueue(_exporter(settings))
    provider.add_span_processor(processor)
    _RECORDERS[provider] = _Recorder(provider, processor)
    return provider


def stop_tracer_provider(provider: TracerProvider) -> None:
    """Export what the batch still holds, waiting SHUTDOWN_EXPORT_SECONDS at most: with the
    collector down, the SDK would retry for up to 30 s and hold the worker's exit back."""
    stopping = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
    stopping.start()
    stopping.join(SHUTDOWN_EXPORT_SECONDS)


class _Recorder:
    """What the service's own spans need to be exported as the SDK's would: the provider's
    resource, an instrumentation scope, and the span processor create_tracer_provider gave it."""

    __slots__ = ("db_scope", "http_scope", "processor", "resource")

    def __init__(self, provider: TracerProvider, processor: SpanProcessor) -> None:
        self.resource = provider.resource
        self.processor = processor
        self.http_scope = InstrumentationScope("service.http", __version__)
        self.db_scope = InstrumentationScope("service.db", __version__)


# The recorder of each provider create_tracer_provider built.
_RECORDERS: weakref.WeakKeyDictionary[TracerProvider, _Recorder] = weakref.WeakKeyDictionary()


def _recorder(provider: TracerProvider) -> _Recorder:
    recorder = _RECORDERS.get(provider)
    if recorder is None:
        raise ValueError("the tracer provider must come from create_tracer_provider")
    return recorder


class _Span(trace.Span):
    """A sampled span of ours (the request's server span, a statement's client span), kept to
    what those need and handed to the span processor as an SDK ReadableSpan when it ends.

    Why not the SDK's own span: each cost 20 us to start and end plus 7 us per attribute on the
    bench machine (`tracer.start_span(name, attributes=...).end()` timed in a loop; mostly its
    attribute checks), which kept a fully sampled task list at 1.66x the untraced CPU
    (bench/tracing_cpu.py; 1.23x with these). This one is plain slots and a dict; the
    attribute values are ours (str and int), so they need no checking. OpenTelemetry's own spans
    (the httpx client spans) take it as their parent through the context like any span. Unlike
    the SDK's, the processor's on_start is not called (the batch and simple processors do
    nothing there) and OTEL_SPAN_ATTRIBUTE_* limits do not apply (a handful of attributes, the
    longest a statement's text from its SQL file)."""

    __slots__ = (
        "_context",
        "_ended",
        "_kind",
        "_name",
        "_parent",
        "_scope",
        "attributes",
        "events",
        "recorder",
        "start_time",
        "status",
    )

    def __init__(
        self,
        recorder: _Recorder,
        scope: InstrumentationScope,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
    ) -> None:
        self.recorder = recorder
        self._scope = scope
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self.attributes = attributes
        self.events: list[Event] = []
        self.status = _UNSET
        self._ended = False
        self.start_time = time_ns()

    def child(self, name: str, attributes: dict[str, Any]) -> _Span:
        """A CLIENT span under this one (a statement), not made current: nothing inside starts a span."""
        context = self._context
        own = SpanContext(
            context.trace_id, getrandbits(64) or 1, False, context.trace_flags, context.trace_state
        )
        return _Span(self.recorder, self.recorder.db_scope, name, own, context, SpanKind.CLIENT, attributes)

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return not self._ended

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self.attributes.update(attributes)

    def update_name(self, name: str) -> None:
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK's span: OK is final, UNSET changes nothing.
        if self.status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self.status = status

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        self.events.append(Event(name, attributes, timestamp))

    def record_exception(
        self,
        exception: BaseException,
        attributes: Any = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An `exception` event with the attributes the SDK's span gives it."""
        kind = type(exception)
        module = kind.__module__
        recorded = {
            "exception.type": f"{module}.{kind.__qualname__}"
            if module and module != "builtins"
            else kind.__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
            **(attributes or {}),
        }
        self.add_event("exception", recorded, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        recorder = self.recorder
        recorder.processor.on_end(
            ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=recorder.resource,
                attributes=self.attributes,
                events=self.events,
                kind=self._kind,
                status=self.status,
                start_time=self.start_time,
                end_time=time_ns() if end_time is None else end_time,
                instrumentation_scope=self._scope,
            )
        )


class _Decision:
    """The sampler, as the server layer applies it before building anything for a request.

    The same rules as the SDK's samplers (the provider's, which still decides for the httpx
    client spans under ours, so the two agree): ParentBased follows a valid parent's sampled
    flag; otherwise the root rule keeps a trace when the low 64 bits of its trace id are below
    ratio * 2^64 (TraceIdRatioBased's bound; always_on is ratio 1, always_off ratio 0)."""

    __slots__ = ("bound", "parent_based")

    def __init__(self, settings: Settings) -> None:
        name = settings.otel_traces_sampler
        root = name.removeprefix("parentbased_")
        ratio = {"always_on": 1.0, "always_off": 0.0}.get(root, settings.otel_traces_sampler_arg)
        self.bound = TraceIdRatioBased.get_bound_for_rate(1.0 if ratio is None else ratio)
        self.parent_based = name.startswith("parentbased_")

    def sampled(self, trace_id: int, parent_flags: int | None) -> bool:
        if parent_flags is not None and self.parent_based:
            return bool(parent_flags & TraceFlags.SAMPLED)
        return trace_id & _LOW_64 < self.bound


def parse_traceparent(value: bytes) -> tuple[str, str, int] | None:
    """A W3C `traceparent` (version-traceid-parentid-flags) as (trace id, span id, flags), or
    None when it is invalid: not lowercase hex, an all-zero id, version ff, or a version 00
    header with more fields. A later version may add fields after a dash."""
    if len(value) > _TRACEPARENT_MAX_BYTES:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, more = match.groups()
    if version == b"ff" or (version == b"00" and more) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id.decode(), span_id.decode(), int(flags, 16)


def _caller_parent(headers: Any) -> tuple[str, str, int] | None:
    """The caller's span from the first `traceparent` among ASGI `headers`, parsed
    (parse_traceparent); None when there is none or it is invalid."""
    for name, value in headers:
        if name == b"traceparent":
            return parse_traceparent(value)
    return None


def _untraced(path: str) -> bool:
    # Requests not worth a trace: probes and scrapes, many a minute, all alike.
    return path.startswith("/health") or path == "/metrics"


class TracedAsgi:
    """The server span layer: sampling is decided first, from the caller's `traceparent` and the
    configured sampler, so a request left out costs a header scan and a random number, and
    nothing of OpenTelemetry's ASGI instrumentation (which built attributes, a span and a
    wrapped send for every request, sampled or not: 55 % more CPU per request at 10 % sampling,
    bench/tracing_cpu.py).

    Not sampled: the trace id (the caller's, or a fresh one) goes to the access line and 5xx
    bodies; database statements record nothing (their wrapper finds no server span in the
    scope); a call to the AI service or an identity provider first puts a non-recording span
    with that trace id and sampled flag 00 in the context (continue_unsampled_trace), so the
    dependency is told the trace is not sampled. Sampled: one SERVER span, the caller's span its
    parent, named `METHOD /route/template` once routed (the method alone otherwise)."""

    __slots__ = ("app", "decision", "recorder")

    def __init__(self, app: ASGIApp, provider: TracerProvider, settings: Settings) -> None:
        self.app = app
        self.recorder = _recorder(provider)
        self.decision = _Decision(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _untraced(scope["path"]):
            await self.app(scope, receive, send)
            return
        parent = _caller_parent(scope["headers"])
        if parent is None:
            trace_id = getrandbits(128) or 1
            trace_hex = f"{trace_id:032x}"
            parent_flags = None
        else:
            trace_hex, _, parent_flags = parent
            trace_id = int(trace_hex, 16)
        scope[TRACE_ID_KEY] = trace_hex  # type: ignore[literal-required]
        if self.decision.sampled(trace_id, parent_flags):
            await self._sampled(scope, receive, send, trace_id, parent)
            return
        # Not sampled: nothing more until the request calls a dependency, when
        # continue_unsampled_trace puts the trace in OpenTelemetry's context. Building and
        # attaching that context for every request (and the statement wrapper's reading of it)
        # was half of what tracing added to an unsampled task list: 38,500 instructions, now
        # 18,200 (`bench/instructions.py --traced --ratios 0`); this layer, 2.2 us of CPU, now 0.9.
        await self.app(scope, receive, send)

    async def _sampled(
        self, scope: Scope, receive: Receive, send: Send, trace_id: int, parent: tuple[str, str, int] | None
    ) -> None:
        caller = None
        if parent is None:
            flags = _RANDOM_SAMPLED  # a random trace id, as the SDK flags its own
            state = _NO_TRACESTATE
        else:
            flags = TraceFlags(_SAMPLED | (parent[2] & _RANDOM))
            state = _tracestate(scope["headers"])
            caller = SpanContext(trace_id, int(parent[1], 16), True, TraceFlags(parent[2]), state)
        method = _method(scope)
        recorder = self.recorder
        span = _Span(
            recorder,
            recorder.http_scope,
            method,
            SpanContext(trace_id, getrandbits(64) or 1, False, flags, state),
            caller,
            SpanKind.SERVER,
            {
                _HTTP_METHOD: method,
                _HTTP_SCHEME: scope["scheme"],
                _HTTP_TARGET: scope["path"],  # the path: an ASGI path has no query string
                _REQUEST_ID: scope.get("request_id", ""),  # type: ignore[call-overload]
            },
        )
        status = 0

        async def send_recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        scope[SERVER_SPAN_KEY] = span  # type: ignore[literal-required]
        token = attach(set_span_in_context(span, _EMPTY))
        try:
            await self.app(scope, receive, send_recorded)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            detach(token)
            template = scope.get("path_template")  # type: ignore[call-overload]
            if template:
                span.update_name(f"{method} {template}")
                span.attributes[_HTTP_ROUTE] = template
            if status:
                span.attributes[_HTTP_STATUS_CODE] = status
            if status >= 500 and span.status.status_code is StatusCode.UNSET:
                span.status = _ERROR
            span.end()


def _unsampled_parent(scope: Mapping[str, Any]) -> SpanContext:
    """What an unsampled request passes on, as the SDK itself would propagate it: the request's
    trace id under the caller's span with its flags (the sampled bit off), or for a new trace
    under a random span id, flags 02 (random trace id, not sampled)."""
    trace_id = int(scope[TRACE_ID_KEY], 16)
    parent = _caller_parent(scope["headers"])
    if parent is None:
        return SpanContext(trace_id, getrandbits(64) or 1, False, _RANDOM_UNSAMPLED)
    return SpanContext(trace_id, int(parent[1], 16), True, TraceFlags(parent[2] & _RANDOM))


async def continue_unsampled_trace(request: Any) -> None:
    """An httpx request hook (it runs in the caller's task, before the transport and so before
    OpenTelemetry's client span): in a request the sampler left out, make the request's trace
    the current context, so the client span is not sampled either and the dependency hears the
    request's trace id with the sampled flag off. The context stays for the rest of the request,
    as it would have had TracedAsgi attached it at the start. Outside a request, or in a sampled
    one (its server span is current), nothing changes."""
    if get_current_span().get_span_context().is_valid:
        return  # a sampled request's span, or an earlier call of this request
    scope = request_context.get()
    if scope is None or TRACE_ID_KEY not in scope:
        return  # outside a request, or one the tracing layer does not trace (probes)
    attach(set_span_in_context(NonRecordingSpan(_unsampled_parent(scope)), _EMPTY))


def _tracestate(headers: Any) -> TraceState:
    values = [value.decode("latin-1") for name, value in headers if name == b"tracestate"]
    if not values or sum(len(value) + 1 for value in values) > _TRACESTATE_MAX_CHARS:
        return _NO_TRACESTATE
    return TraceState.from_header(values)


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


def traced_asgi(app: ASGIApp, provider: TracerProvider, settings: Settings) -> ASGIApp:
    """`app` wrapped in the server span layer (TracedAsgi): one server span per sampled request."""
    # OpenTelemetry's httpx instrumentation writes `traceparent` through the process's propagator.
    set_global_textmap(OwnTraceContext())
    return TracedAsgi(app, provider, settings)


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

    hooks = http.event_hooks
    http.event_hooks = {**hooks, "request": [continue_unsampled_trace, *hooks.get("request", [])]}
    HTTPXClientInstrumentor.instrument_client(
        http, tracer_provider=provider, meter_provider=_NO_METRICS, request_hook=name_the_peer
    )


_DB_ATTRIBUTES = {"db.system.name": "postgresql", "db.system": "postgresql"}


def _traced(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def recorded(self: Any, query: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request_span = get_current_span()
        if not request_span.is_recording():  # the request's span has ended (a task it left running)
            return await method(self, query, *args, **kwargs)
        # The statement text has $n placeholders only: parameter values are never recorded.
        attributes = {**_DB_ATTRIBUTES, "db.query.text": query}
        span = (
            request_span.child(statement_name(query), attributes)
            if isinstance(request_span, _Span)
            else self.tracer.start_span(statement_name(query), kind=SpanKind.CLIENT, attributes=attributes)
        )
        try:
            return await method(self, query, *args, **kwargs)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()

    def traced(self: Any, query: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        # Outside a request (pool start-up, jobs), or in a request the sampler left out: the
        # request scope says so without a walk through OpenTelemetry's context, and the caller
        # awaits asyncpg's own coroutine, with no frame of ours to pass through at each resume.
        scope = request_context.get()
        if scope is None or SERVER_SPAN_KEY not in scope:
            return method(self, query, *args, **kwargs)
        return recorded(self, query, args, kwargs)

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
