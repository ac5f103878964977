"""Every exception, expected or not, leaves as problem+json: Litestar's HTTP errors, a database that
cannot answer (503 with Retry-After), a value the database refuses (400, without the driver's
text), a transaction that lost a conflict, undecodable or too deeply nested input, and the rest
(a logged 500)."""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

import asyncpg
from litestar import Request, Response
from litestar.exceptions import HTTPException, InternalServerException, ValidationException
from litestar.types import ExceptionHandlersMap

from service.db.pool import outage, raised_by_database
from service.http.errors import DEPENDENCY_RETRY_AFTER_SECONDS, FieldError, named_field, problem_response

log = logging.getLogger("service.errors")

TRACE_ID_KEY = "trace_id"  # service.observability.tracing.TRACE_ID_KEY, without importing OpenTelemetry
ERROR_TRACKER_KEY = "error_tracker"  # service.observability.error_tracking's, without importing sentry-sdk


def _source_name(source: Any) -> str | None:
    # Litestar gives ParamType members for path and query parameters, whose str() is "ParamType.PATH".
    if not source:
        return None
    return str(getattr(source, "value", source))


def _field_errors(extra: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, dict):
                field = str(item.get("key") or "body")
                message = str(item.get("message", "invalid value"))
                if message == repr(field):
                    # Litestar re-checks each parameter after a failure and reports a path parameter
                    # the handler does not take (a controller's {user_id}) as the KeyError's text.
                    continue
                if field == "data":  # Litestar's name for the whole body: name the field the message names
                    field = named_field(message) or "body"
                source = _source_name(item.get("source"))
                errors.append(FieldError(field=field, message=message, source=source))
    return errors


def _validation_detail(errors: list[FieldError], fallback: str) -> str:
    if not errors:
        return fallback
    first = errors[0]
    return f"{first.field}: {first.message}" if first.field != "body" else first.message


# What Litestar raises, as a 500, when the client disconnects while its body is being read.
_CLIENT_LEFT_DETAIL = "client disconnected prematurely"


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if isinstance(exc, InternalServerException) and exc.detail == _CLIENT_LEFT_DETAIL:
        # Nobody reads this answer, but logs and metrics would count the client's hang-up as
        # a server error.
        return problem_response(request, 400, "the client disconnected before the body was complete")
    if isinstance(exc, ValidationException):
        errors = _field_errors(exc.extra)
        return problem_response(request, 400, _validation_detail(errors, exc.detail), headers, errors)
    detail = exc.detail or HTTPStatus(status).phrase
    if status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    elif status == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    return problem_response(request, status, detail, headers)


# Always the database's: asyncpg's connection errors.
_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    # What returning a connection to the pool raises when the server ended the session during
    # its last query (asyncpg#784); the pool has already thrown the connection away.
    asyncpg.exceptions.InternalClientError,
)
# The database's only when raised by asyncpg or the pool (a refused connection, a pool or command
# timeout: db.raised_by_database); from anywhere else they are bugs, logged as such.
_UNAVAILABLE_WHEN_FROM_THE_DATABASE = (OSError, asyncio.TimeoutError)


def is_database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    return isinstance(exc, _UNAVAILABLE_WHEN_FROM_THE_DATABASE) and raised_by_database(exc)


def handle_database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    outage.failed(exc)  # one warning per outage, not one per request
    return problem_response(
        request,
        503,
        "the database is unavailable; retry shortly",
        {"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
    )


def handle_transaction_conflict(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # A deadlock or serialization failure that survived db.in_transaction's retries (or hit a
    # statement outside it): nothing was committed, and the same request can simply be sent again.
    log.warning("transaction aborted by the database: %s", type(exc).__name__)
    return problem_response(
        request, 503, "a conflicting change was in progress; retry the request", {"Retry-After": "1"}
    )


def handle_schema_not_migrated(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # A table this version needs is missing: its migrations are pending (`service serve` started
    # while the database was down applies them once it answers; readiness is 503 until then).
    # Every SQL file is prepared against the migrated schema by the tests, so this is never a typo.
    log.error("database schema not migrated on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        request,
        503,
        "the database schema is being migrated; retry shortly",
        {"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
    )


# What a client is told when PostgreSQL or asyncpg refuses one of its values, by SQLSTATE. The
# driver's own text names query arguments and Python reprs: it goes to the log, never to a client.
_DATA_ERROR_DETAILS = {
    "22001": "a text value is longer than the database accepts",
    "22003": "a number is out of the range the database accepts",
    "22008": "a date or time is out of the range the database accepts",
    "22021": "a text value contains a character the database cannot store (such as NUL)",
    "22P05": "a text value contains a character the database cannot store (such as NUL)",
}
_DATA_ERROR_FALLBACK = "a value is out of the range the database accepts"


def handle_data_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # The input is at fault (a NUL byte, an out-of-range number or date), but which input and
    # why should have been said by validation before the query; the log keeps the driver's words.
    log.info("database refused a value on %s %s: %s", request.method, request.url.path, exc)
    sqlstate = getattr(exc, "sqlstate", None)
    return problem_response(
        request, 400, f"invalid input: {_DATA_ERROR_DETAILS.get(sqlstate or '', _DATA_ERROR_FALLBACK)}"
    )


def handle_undecodable_text(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[bytes]:
    # Only client input is decoded from bytes here: a JSON string or a form field that is not UTF-8.
    return problem_response(request, 400, f"the request is not valid UTF-8 text (byte {exc.start})")


def handle_recursion(request: Request[Any, Any, Any], exc: RecursionError) -> Response[bytes]:
    # msgspec stops at the interpreter's recursion limit (about 1000 levels) and says so: a body
    # nested that deeply is the client's; any other RecursionError is ours.
    if "while deserializing" in str(exc):
        return problem_response(request, 400, "JSON is nested too deeply")
    return handle_unexpected(request, exc)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if is_database_unavailable(exc):
        return handle_database_unavailable(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    if TRACE_ID_KEY in request.scope:  # traced: tracing is on, and so imported already
        from service.observability.tracing import record_exception

        record_exception(exc)
    tracker = request.app.state.get(ERROR_TRACKER_KEY)
    if tracker is not None:
        tracker.capture(exc, request.scope)
    return problem_response(request, 500, "internal error; it has been logged")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: handle_http_exception,
    asyncpg.DataError: handle_data_error,
    asyncpg.exceptions.TransactionRollbackError: handle_transaction_conflict,
    asyncpg.exceptions.UndefinedTableError: handle_schema_not_migrated,
    UnicodeDecodeError: handle_undecodable_text,
    RecursionError: handle_recursion,
    Exception: handle_unexpected,
}
