"""Optional error tracking: with SENTRY_DSN set, every 500 is sent to Sentry (or any server that
speaks its envelope protocol), tagged with the request id and trace id its problem body carries.

Only create_app imports this module, and only when SENTRY_DSN is set; sentry-sdk is the `sentry`
extra (`pip install 'service[sentry]'`, `uv sync --extra sentry`).

sentry-sdk's Litestar integration is deliberately not enabled (nor any auto-enabled one): it
patches `HTTPRoute.handle` to read and parse every request body (JSON, forms, multipart uploads)
before the route runs, so an anonymous 10 MiB upload would be parsed before its 401, and a login
form parsed by Litestar's parser instead of our bounded one; and it reports exceptions our handlers
turn into 4xx/503 (a value PostgreSQL refuses, a database outage) as crashes. Instead the one
handler that answers 500 (service.http.exception_handlers.handle_unexpected) captures the exception here.

What leaves: the exception with its stack trace (no local variables), the method and path, the
request id and trace id. Never headers, cookies, query strings or bodies (no token, password or
email), and no breadcrumbs; `send_default_pii` stays off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sentry_sdk
from sentry_sdk.utils import event_from_exception

from service import __version__
from service.settings import Settings

CLOSE_TIMEOUT_SECONDS = 2.0
_REQUEST_FIELDS_KEPT = ("method", "url")


def _scrubbed(event: Any, _hint: Any) -> Any:
    """Keep only what this module puts in an event's request: method and path."""
    request = event.get("request")
    if isinstance(request, dict):
        event["request"] = {key: request[key] for key in _REQUEST_FIELDS_KEPT if key in request}
    event.pop("user", None)
    event.pop("breadcrumbs", None)
    return event


class ErrorTracker:
    """A Sentry client of this app's own (not the process-wide one), so two apps in one process,
    as in the tests, never report to each other's DSN."""

    def __init__(self, settings: Settings) -> None:
        self.client = sentry_sdk.Client(
            dsn=settings.sentry_dsn,
            environment=settings.environment,
            release=f"service@{__version__}",
            default_integrations=False,
            auto_enabling_integrations=False,
            include_local_variables=False,
            max_breadcrumbs=0,
            before_send=_scrubbed,
        )

    def capture(self, exc: BaseException, scope: Mapping[str, Any]) -> None:
        """Send `exc` in the background (sentry-sdk's transport thread); never raises."""
        with sentry_sdk.new_scope() as sentry_scope:
            sentry_scope.set_client(self.client)
            for key in ("request_id", "trace_id"):
                value = scope.get(key)
                if value:
                    sentry_scope.set_tag(key, value)
            event: Any = _exception_event(exc, self.client)
            event["request"] = {"method": scope.get("method"), "url": scope.get("path")}
            sentry_scope.capture_event(event, hint={"exc_info": (type(exc), exc, exc.__traceback__)})

    def close(self) -> None:
        """Send what waits, for CLOSE_TIMEOUT_SECONDS at most (at the app's shutdown)."""
        self.client.close(timeout=CLOSE_TIMEOUT_SECONDS)


def _exception_event(exc: BaseException, client: Any) -> dict[str, Any]:
    event, _ = event_from_exception(
        exc, client_options=client.options, mechanism={"type": "service", "handled": False}
    )
    return dict(event)
