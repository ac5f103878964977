"""Errors as RFC 9457 problem+json with a `detail`, the field FastAPI-era frontends read: the shape,
the exceptions routes raise, and the 400s that name a field. service/http/exception_handlers.py
turns every exception into one; service/http/openapi.py documents them (`problem_responses`)."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

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


def named_field(message: str) -> str | None:
    match = _NAMED_FIELD.search(message)
    return match.group(1) if match else None


def invalid_field(field: str, message: str, source: str = "body") -> ValidationException:
    """A 400 that names the offending field, shaped like Litestar's own validation errors."""
    return ValidationException(detail=message, extra=[{"key": field, "message": message, "source": source}])


def invalid_body(exc: msgspec.DecodeError) -> ValidationException:
    """The 400 for a body a handler decoded itself (a route that accepts several content types)."""
    if not isinstance(exc, msgspec.ValidationError):
        return ValidationException(detail=f"JSON is malformed: {exc}")
    message, _, location = str(exc).partition(" - at `$")
    field = location.rstrip("`").lstrip(".") or named_field(message) or "body"
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
