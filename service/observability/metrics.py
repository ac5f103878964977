"""Prometheus metrics: HTTP traffic by route template, the database pool, AI service calls, logins.

Other domains record through `record_ai_call` and `record_login`. Labels only ever take values
from small fixed sets (route templates, not raw paths), so no input can multiply the series.

Several workers: prometheus_client decides at import time, from PROMETHEUS_MULTIPROC_DIR, whether
samples live in process memory or in files under that directory. `service serve --workers N`
sets the variable to a fresh directory before the workers start; /metrics (service/health/routes.py)
then merges every worker's files, whichever worker answers the scrape.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, get_args

from litestar.datastructures import State
from litestar.types import Scope
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
)

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
# A *_created series per labelled series doubles what Prometheus stores and nobody reads it.
disable_created_metrics()  # type: ignore[no-untyped-call]

AiCallOutcome = Literal["success", "timeout", "unavailable", "bad_response"]
LoginOutcome = Literal["success", "failure", "locked_out"]

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time from receiving a request to the end of its response, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
# livesum: with several workers, the series is the sum over the workers alive now.
DB_POOL_CONNECTIONS = Gauge(
    "db_pool_connections", "Open connections in the database pool.", multiprocess_mode="livesum"
)
DB_POOL_CONNECTIONS_IN_USE = Gauge(
    "db_pool_connections_in_use",
    "Pool connections currently checked out by a request.",
    multiprocess_mode="livesum",
)
DB_POOL_CONNECTIONS_MAX = Gauge(
    "db_pool_connections_max", "The most connections the pool may open.", multiprocess_mode="livesum"
)
CALLER_CACHE_LOOKUPS = Counter(
    "caller_cache_lookups",
    "Authenticated requests by where their caller came from: hit (the caller cache) or miss (the database).",
    ["outcome"],
)
CALLER_CACHE_ENTRIES = Gauge(
    "caller_cache_entries",
    "Entries in the caller caches (identities, users, tokens).",
    multiprocess_mode="livesum",
)
CALLER_CACHE_TRUSTED = Gauge(
    "caller_cache_trusted",
    "Workers whose caller cache is on (their LISTEN connection is up and answering).",
    multiprocess_mode="livesum",
)
AI_SERVICE_CALLS = Counter("ai_service_calls", "Calls to the AI scan service, by outcome.", ["outcome"])
AI_SERVICE_CALL_SECONDS = Histogram(
    "ai_service_call_seconds",
    "Duration of calls to the AI scan service, by outcome.",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0),
)
LOGIN_ATTEMPTS = Counter("login_attempts", "Password logins, by outcome.", ["outcome"])
TRACING_SPANS_DROPPED = Counter(
    "tracing_spans_dropped",
    "Sampled spans dropped because the export queue was full (the trace collector slow or down).",
)

# Every series exists from the start, so rate() and alerts work before the first event.
for _outcome in get_args(AiCallOutcome):
    AI_SERVICE_CALLS.labels(_outcome)
    AI_SERVICE_CALL_SECONDS.labels(_outcome)
for _outcome in get_args(LoginOutcome):
    LOGIN_ATTEMPTS.labels(_outcome)
for _outcome in ("hit", "miss"):
    CALLER_CACHE_LOOKUPS.labels(_outcome)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
GAUGE_REFRESH_SECONDS = 1.0


def record_ai_call(outcome: AiCallOutcome, seconds: float) -> None:
    """success: a usable answer; timeout; unavailable: could not connect; bad_response: an
    error status or a body that does not follow the contract."""
    AI_SERVICE_CALLS.labels(outcome).inc()
    AI_SERVICE_CALL_SECONDS.labels(outcome).observe(seconds)


def record_login(outcome: LoginOutcome) -> None:
    """success; failure: unknown email or wrong password; locked_out: refused by the lockout."""
    LOGIN_ATTEMPTS.labels(outcome).inc()


def refresh_pool_gauges(state: State) -> None:
    pool = state.get("pool")
    if pool is None:
        return
    size = pool.get_size()
    DB_POOL_CONNECTIONS.set(size)
    DB_POOL_CONNECTIONS_IN_USE.set(size - pool.get_idle_size())
    DB_POOL_CONNECTIONS_MAX.set(pool.get_max_size())
    cache = state.get("caller_cache")
    if cache is not None:
        hits, misses = cache.drain_counts()
        CALLER_CACHE_LOOKUPS.labels("hit").inc(hits)
        CALLER_CACHE_LOOKUPS.labels("miss").inc(misses)
        CALLER_CACHE_ENTRIES.set(len(cache))
        CALLER_CACHE_TRUSTED.set(1 if cache.trusted() else 0)


class RequestMetrics:
    """Counts every HTTP response, including 404s, 405s and 429s raised before a handler runs.

    Called by the outermost layer (service.http.middleware) once a response is done: by then
    Litestar's router has written the matched route's template into the scope, which is the
    only path this records.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the state construction gives (the tests' app cache, tests/conftest.py,
        resets a reused app's parts before each test)."""
        self.gauges_due = 0.0
        # The labelled children, looked up once per (route, method, status): `labels()` takes
        # a lock and builds a key on every call. The key set is bounded by the route table.
        self.children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, scope: Scope, status: int, started: float, finished: float) -> None:
        route = scope.get("path_template") or UNMATCHED_ROUTE
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"  # type: ignore[typeddict-item]
        key = (route, method, status)
        children = self.children.get(key)
        if children is None:
            children = (
                HTTP_REQUESTS.labels(route, method, str(status)),
                HTTP_REQUEST_SECONDS.labels(route, method),
            )
            self.children[key] = children
        children[0].inc()
        children[1].observe(finished - started)
        if MULTIPROCESS_DIR and started >= self.gauges_due:
            # A scrape reaches one worker; each worker keeps its own pool gauges current,
            # at most once a second (a multiprocess gauge write is a locked mmap write).
            self.gauges_due = started + GAUGE_REFRESH_SECONDS
            refresh_pool_gauges(scope["litestar_app"].state)  # type: ignore[typeddict-item]


def scrape_registry() -> CollectorRegistry:
    """Every worker's samples (several workers) or this process's."""
    if not MULTIPROCESS_DIR:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def worker_started(state: State) -> None:
    """Report this worker's pool at once, and forget the live gauges of workers that died
    without stopping (uvicorn replaces them)."""
    refresh_pool_gauges(state)
    if not MULTIPROCESS_DIR:
        return
    for path in Path(MULTIPROCESS_DIR).glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match and not _alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]


def worker_stopped() -> None:
    if MULTIPROCESS_DIR:
        multiprocess.mark_process_dead(os.getpid(), MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
