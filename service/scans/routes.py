"""POST /api/scan and the caller's saved scans under /api/scans."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import MediaType, RequestEncodingType
from litestar.exceptions import HTTPException, NotFoundException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import Body, FromPath, QueryParameter

from service.compat.litestar import cache_form
from service.http.conditional import ETAG_HEADER, NOT_MODIFIED_RESPONSE, ConditionalGet, digest_tag, with_tag
from service.http.errors import PayloadTooLarge, UnsupportedMediaType, invalid_field
from service.http.forms import read_bounded_form
from service.http.openapi import BEARER_SECURITY, problem_responses
from service.integrations.ai_service import ai_service
from service.observability.audit import RequestOrigin, Target, record_event
from service.scans import queries
from service.scans.cursor import MAX_CURSOR_CHARS, decode_cursor, encode_cursor
from service.scans.models import Scan, ScanForm, ScanPage
from service.scans.submission import read_submission
from service.scans.uploads import UploadSlots, scan_form_limits
from service.security.auth import CALLER_DEPENDENCY, Caller
from service.security.guards import access, requires_user
from service.settings import Settings

# Room for the multipart boundaries, part headers and the text and force_llm fields.
FORM_OVERHEAD_BYTES = 64 * 1024
_encode = msgspec.json.Encoder().encode


_FORM_TYPES = frozenset({RequestEncodingType.MULTI_PART.value, RequestEncodingType.URL_ENCODED.value})


async def _read_scan_form(request: Request[Any, Any, Any]) -> None:
    media_type, _ = request.content_type
    if media_type not in _FORM_TYPES:
        raise UnsupportedMediaType(
            detail="send the scan as multipart/form-data with `file` and/or `text` "
            "(or application/x-www-form-urlencoded with `text`)"
        )
    # Parsed here, as it arrives and within the bounds of service.scans.uploads, where an
    # undecodable part can still become a 400 and an oversized body a 413 with our message. The
    # parsed form is kept on the request, so `data` is built from it without reading the body again.
    settings: Settings = request.app.state.settings
    try:
        async with asyncio.timeout(settings.scan_body_timeout_seconds):
            fields = await read_bounded_form(request, scan_form_limits(settings.max_upload_bytes))
    except RequestEntityTooLarge:
        raise PayloadTooLarge(
            detail=f"the upload is too large: files and text may be at most {settings.max_upload_bytes} bytes"
        ) from None
    except TimeoutError:
        raise HTTPException(
            status_code=408,
            detail=f"the upload did not arrive within {settings.scan_body_timeout_seconds:g} seconds",
        ) from None
    # Kept before any refusal below, so the files are closed once the answer is sent (UploadSlots).
    form: dict[str, Any] = {
        name: values[0] if len(values) == 1 else values for name, values in fields.items()
    }
    cache_form(request.scope, form)
    for name, values in fields.items():
        if len(values) > 1:
            noun = "file" if name == "file" else f"`{name}` field"
            raise invalid_field(name, f"send one {noun} per scan, not {len(values)}")
    if form.get("file") == "":
        # What a browser sends for a file input left empty: a part with filename="" and no bytes,
        # which the parser keeps as an empty text field. It means "no file".
        del form["file"]
    elif isinstance(form.get("file"), str):
        raise invalid_field(
            "file", "send the file as a multipart/form-data file part, with a filename, not as a text field"
        )
    for name in ("text", "force_llm"):
        if isinstance(form.get(name), UploadFile):
            raise invalid_field(name, f"send `{name}` as a text field, not as a file part")


class ScanController(Controller):
    tags = ["scans"]
    before_request = access(requires_user)  # type: ignore[assignment]
    dependencies = CALLER_DEPENDENCY
    security = BEARER_SECURITY

    @post(
        "/scan",
        operation_id="createScan",
        summary="Scan a file or text for risks",
        status_code=201,
        before_request=access(requires_user, _read_scan_form),
        middleware=[UploadSlots],
        responses=problem_responses(400, 401, 408, 413, 415, 502),
    )
    async def create_scan(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Caller],
        data: Annotated[ScanForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> Scan:
        """Send a file and/or text to the AI service, save what it found and return it.

        multipart/form-data as described; a text-only scan may also be sent as
        application/x-www-form-urlencoded (`text`, `force_llm`). An empty file part (a browser's
        empty file input) means no file.

        The AI service's refusals keep their 4xx status and message; its failures are 502;
        when it is unreachable or slower than AI_SERVICE_TIMEOUT_SECONDS the answer is 503
        with Retry-After. A failed scan saves nothing.

        Each worker takes SCAN_MAX_CONCURRENT_UPLOADS scans at a time; one more is 503 with
        Retry-After before its body is read. A form has at most 8 fields; `force_llm` at most
        64 bytes; a body that has not arrived within SCAN_BODY_TIMEOUT_SECONDS (120 s) is 408.
        """
        state = request.app.state
        settings: Settings = state.settings
        submission = await read_submission(data, settings.max_upload_bytes)
        result = await ai_service.request_scan(state.http, settings, submission)
        filename = submission.document.filename if submission.document else None
        return await queries.insert_scan(state.pool, caller.id, filename, result.data, result.source)

    @get(
        "/scans",
        operation_id="listScans",
        summary="List the caller's scans, newest first",
        response_headers=[ETAG_HEADER],
        responses={**NOT_MODIFIED_RESPONSE, **problem_responses(400, 401)},
        operation_class=ConditionalGet,
    )
    async def list_scans(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Caller],
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="Page size")] = 20,
        cursor: Annotated[
            str | None,
            QueryParameter(max_length=MAX_CURSOR_CHARS, description="The previous page's `next_cursor`"),
        ] = None,
    ) -> Response[ScanPage]:
        """The caller's scans, newest first."""
        after = None if cursor is None else decode_cursor(cursor)
        scans = await queries.list_scans(request.app.state.pool, caller.id, after, limit + 1)
        items = scans[:limit]
        has_more = len(scans) > limit
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if has_more else None
        return _tagged(request, ScanPage(items=items, next_cursor=next_cursor))

    @get(
        "/scans/{scan_id:uuid}",
        operation_id="getScan",
        summary="Get one of the caller's scans",
        response_headers=[ETAG_HEADER],
        responses={**NOT_MODIFIED_RESPONSE, **problem_responses(400, 401, 404)},
        operation_class=ConditionalGet,
    )
    async def get_scan(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Caller],
        scan_id: FromPath[uuid.UUID],
    ) -> Response[Scan]:
        """One of the caller's scans; another user's scan is 404."""
        scan = await queries.get_scan(request.app.state.pool, caller.id, scan_id)
        if scan is None:
            raise _scan_not_found(scan_id)
        return _tagged(request, scan)

    @delete(
        "/scans/{scan_id:uuid}",
        operation_id="deleteScan",
        summary="Delete one of the caller's scans",
        status_code=204,
        responses=problem_responses(400, 401, 404),
    )
    async def delete_scan(
        self, request: Request[Any, Any, Any], caller: NamedDependency[Caller], scan_id: FromPath[uuid.UUID]
    ) -> None:
        """Delete one of the caller's scans; another user's scan is 404."""
        async with request.app.state.pool.acquire() as connection, connection.transaction():
            deleted = await queries.delete_scan(connection, caller.id, scan_id)
            if deleted is None:
                raise _scan_not_found(scan_id)
            await record_event(
                connection,
                "scan.deleted",
                origin=RequestOrigin.of(request),
                actor=caller,
                target=Target.scan(scan_id),
                details={"filename": deleted.filename},
            )


def _tagged(request: Request[Any, Any, Any], answer: Scan | ScanPage) -> Response[Any]:
    # Encoded here so the tag is a digest of the very bytes sent; a saved scan never changes.
    body = _encode(answer)
    return with_tag(request, digest_tag(body), body, media_type=MediaType.JSON)


def _scan_not_found(scan_id: uuid.UUID) -> NotFoundException:
    return NotFoundException(f"scan {scan_id} not found")


def scan_handlers(settings: Settings) -> list[Router]:
    """The scan routes, with a body limit that fits the largest accepted upload."""
    return [
        Router(
            path="/",
            route_handlers=[ScanController],
            request_max_body_size=settings.max_upload_bytes + FORM_OVERHEAD_BYTES,
        )
    ]
