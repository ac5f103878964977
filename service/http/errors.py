"""Every error leaves as RFC 9457 problem+json with a `detail`, the field FastAPI-era frontends read."""

from __future__ import annotations

import asyncio
import logging
import re
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, InternalServerException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap

log = logging.getLogger("service.errors")

PROBLEM_JSON = "application/problem+json"
DEPENDENCY_RETRY_AFTER_SECONDS = 5


class FieldError(msgspec.Struct, omit_defaults=True):
    field: str
    message: str
    source: str | None = None


class Problem(msgspec.Struct, omit_defaults=True):
    """The body of every error response (RFC 9457)."""

    status: int
    title: str
    detail: str
    type: str = "about:blank"
    instance: str | None = None
    request_id: str | None = None
    # On 5xx answers of a traced request: what a user's report needs to find the trace.
    trace_id: str | None = None
    errors: list[FieldError] | None = None


class ServiceUnavailable(HTTPException):
    """A dependency (database, AI service, identity provider) cannot answer right now."""

    status_code = 503

    def __init__(self, detail: str, retry_after: int = DEPENDENCY_RETRY_AFTER_SECONDS) -> None:
        super().__init__(detail=detail, headers={"Retry-After": str(retry_after)})


class BadGateway(HTTPException):
    status_code = 502


class Conflict(HTTPException):
    status_code = 409


class PayloadTooLarge(HTTPException):
    status_code = 413


class UnsupportedMediaType(HTTPException):
    status_code = 415


class TooManyRequests(HTTPException):
    status_code = 429

    def __init__(self, detail: str, retry_after: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail=detail, headers={**(headers or {}), "Retry-After": str(max(1, retry_after))})


_encoder = msgspec.json.Encoder()


def request_id_of(request: Request[Any, Any, Any]) -> str | None:
    value = request.scope.get("request_id")  # type: ignore[call-overload, arg-type]
    return value if isinstance(value, str) else None


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    errors: list[FieldError] | None = None,
) -> Response[bytes]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # a status code the standard library does not name
        phrase = "Error"
    body = Problem(
        status=status,
        title=phrase,
        detail=detail,
        instance=request.url.path,
        request_id=request_id_of(request),
        trace_id=request.scope.get("trace_id") if status >= 500 else None,  # type: ignore[call-overload, arg-type]
        errors=errors,
    )
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(
        content=_encoder.encode(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=all_headers,
    )


_NAMED_FIELD = re.compile(r"(?:missing required|unknown) field `([^`]+)`")


def _named_field(message: str) -> str | None:
    match = _NAMED_FIELD.search(message)
    return match.group(1) if match else None


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
                    field = _named_field(message) or "body"
                source = _source_name(item.get("source"))
                errors.append(FieldError(field=field, message=message, source=source))
    return errors


def invalid_field(field: str, message: str, source: str = "body") -> ValidationException:
    """A 400 that names the offending field, shaped like Litestar's own validation errors."""
    return ValidationException(detail=message, extra=[{"key": field, "message": message, "source": source}])


def invalid_body(exc: msgspec.DecodeError) -> ValidationException:
    """The 400 for a body a handler decoded itself (a route that accepts several content types)."""
    if not isinstance(exc, msgspec.ValidationError):
        return ValidationException(detail=f"JSON is malformed: {exc}")
    message, _, location = str(exc).partition(" - at `$")
    field = location.rstrip("`").lstrip(".") or _named_field(message) or "body"
    return invalid_field(field, message)


_JSON_MEDIA_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json$")


async def require_json_body(request: Request[Any, Any, Any]) -> None:
    """`before_request` hook for JSON routes: a body that does not say it is JSON is a 415, rather
    than being parsed anyway (a cross-site form can send text/plain without a CORS preflight)."""
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if has_body and not _JSON_MEDIA_TYPE.match(request.content_type[0]):
        raise UnsupportedMediaType(
            f"send the body as application/json, not {request.content_type[0] or 'untyped'}"
        )


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
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


def handle_database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
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
    if isinstance(exc, _UNAVAILABLE):
        return handle_database_unavailable(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "internal error; it has been logged")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: handle_http_exception,
    asyncpg.DataError: handle_data_error,
    asyncpg.exceptions.TransactionRollbackError: handle_transaction_conflict,
    UnicodeDecodeError: handle_undecodable_text,
    RecursionError: handle_recursion,
    Exception: handle_unexpected,
}


_RESPONSE_DESCRIPTIONS = {
    400: "Invalid input",
    401: "Missing or invalid credentials",
    403: "Authenticated but not allowed",
    404: "Absent, or not yours",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "Unsupported media type",
    429: "Rate limited; see Retry-After",
    502: "An upstream service answered badly",
    503: "A dependency is unavailable; see Retry-After",
}


# Every /api route is rate limited and needs the database.
API_STATUSES = (429, 503)


def problem_responses(*statuses: int, api: bool = True) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem+json answers a route can give (with `api`, also 429 and 503)."""
    if api:
        statuses = tuple(sorted({*statuses, *API_STATUSES}))
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_RESPONSE_DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in statuses
    }
