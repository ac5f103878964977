"""The client of the AI scan service: POST {AI_SERVICE_URL}/scan, multipart file/text/force_llm.

Every way the call can go wrong leaves as the answer our own caller should see: the AI service
down or too slow is 503 with Retry-After; its refusal of the input keeps its 4xx and message;
its own failure, a redirect or an answer that is not the contract is 502. The caller's
credentials are never sent: the request carries only the fields below.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import IO, Annotated, Any, Literal

import httpx
import msgspec
from litestar.exceptions import HTTPException

from service.http.errors import DEPENDENCY_RETRY_AFTER_SECONDS, BadGateway, ServiceUnavailable
from service.http.patterns import NO_NUL
from service.http.tls import client_tls_context
from service.observability.metrics import AiCallOutcome, record_ai_call
from service.settings import Settings

log = logging.getLogger("service.ai_service")

# PostgreSQL cannot store NUL in jsonb text; an answer carrying one is not something we can keep.
StoredText = Annotated[str, msgspec.Meta(pattern=NO_NUL)]

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_DETAIL_CHARS = 500
# These statuses speak about our service's standing with the AI service, not about the
# user's input, so passing them through would mislead the frontend (a 401 logs users out).
_GATEWAY_FAULTS = frozenset({401, 403, 404, 405, 407, 501, 505})
_TRY_LATER = frozenset({408, 429, 503, 504})


class Risk(msgspec.Struct, frozen=True):
    risk: StoredText
    category: StoredText
    context: StoredText


class AiScanResult(msgspec.Struct, frozen=True):
    """The AI service's answer; fields it may add later are ignored."""

    data: list[Risk]
    source: Literal["llm", "model"]


@dataclass(frozen=True)
class Document:
    """A dataclass, not a Struct: `content` may be a file, which msgspec has no type for."""

    filename: str
    content_type: str
    # A file spooled to disk is streamed from it in chunks rather than held in memory.
    content: bytes | IO[bytes]


@dataclass(frozen=True)
class ScanRequest:
    text: str | None
    document: Document | None
    force_llm: bool


_result_decoder = msgspec.json.Decoder(AiScanResult)
_any_decoder = msgspec.json.Decoder()


_Part = tuple[str, tuple[str | None, bytes | str | IO[bytes], str | None]]


def _multipart(request: ScanRequest) -> list[_Part]:
    # Sent as file parts (text fields have no filename) so the body is multipart even without a file.
    fields: list[_Part] = []
    if request.document is not None:
        document = request.document
        fields.append(("file", (document.filename, document.content, document.content_type)))
    if request.text is not None:
        fields.append(("text", (None, request.text, None)))
    fields.append(("force_llm", (None, "true" if request.force_llm else "false", None)))
    return fields


def create_client(settings: Settings) -> httpx.AsyncClient:
    """The AI service's own client: as many connections as a worker has scans in flight
    (SCAN_MAX_CONCURRENT_UPLOADS), so no scan waits for one, and no other dependency shares them."""
    connections = settings.scan_max_concurrent_uploads
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=settings.ai_service_timeout_seconds,
        follow_redirects=False,
        verify=client_tls_context(),
    )


async def request_scan(http: httpx.AsyncClient, settings: Settings, request: ScanRequest) -> AiScanResult:
    """Ask the AI service for the risks in `request`; raise the HTTP answer our caller should get."""
    url = settings.ai_service_url.rstrip("/") + "/scan"
    timeout = settings.ai_service_timeout_seconds
    started = time.perf_counter()

    def outcome(name: AiCallOutcome) -> None:
        record_ai_call(name, time.perf_counter() - started)

    try:
        # httpx's timeout bounds each phase; the outer one bounds the whole exchange, so an
        # answer trickled byte by byte cannot hold the request open.
        async with asyncio.timeout(timeout):
            async with http.stream(
                "POST",
                url,
                files=_multipart(request),
                headers={"Accept": "application/json"},
                timeout=timeout,
                follow_redirects=False,
            ) as response:
                body = await _read_capped(response)
    except (httpx.TimeoutException, TimeoutError):
        outcome("timeout")
        log.warning("AI service timed out after %ss", timeout)
        raise ServiceUnavailable(f"the AI service did not answer within {timeout:g} seconds") from None
    except httpx.ConnectError as exc:
        outcome("unavailable")
        log.warning("AI service unreachable: %s", exc)
        raise ServiceUnavailable("the AI service is unreachable") from None
    except httpx.HTTPError as exc:
        outcome("bad_response")
        log.warning("AI service exchange failed: %s: %s", type(exc).__name__, exc)
        raise BadGateway(detail="the AI service broke off its answer") from None
    if not 200 <= response.status_code < 300:
        outcome("bad_response")
        raise _answer_for_failure(response, body)
    try:
        result = _result_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        outcome("bad_response")
        log.warning("AI service answered outside the contract: %s", exc)
        raise BadGateway(detail=f"the AI service answered outside its contract: {exc}") from None
    outcome("success")
    return result


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise BadGateway(detail=f"the AI service answered with more than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer_for_failure(response: httpx.Response, body: bytes) -> HTTPException:
    status = response.status_code
    message = _upstream_message(response, body)
    log.warning("AI service answered %s: %s", status, message)
    if 300 <= status < 400:
        return BadGateway(detail=f"the AI service redirected ({status}); redirects are not followed")
    if status in _TRY_LATER:
        retry_after = _retry_after(response)
        return ServiceUnavailable(f"the AI service is busy: {message}", retry_after=retry_after)
    if 400 <= status < 500 and status not in _GATEWAY_FAULTS:
        return HTTPException(status_code=status, detail=message)
    return BadGateway(detail=f"the AI service failed ({status}): {message}")


def _retry_after(response: httpx.Response) -> int:
    value = response.headers.get("retry-after", "")
    if value.isdigit():
        return min(max(int(value), 1), 3600)
    return DEPENDENCY_RETRY_AFTER_SECONDS


def _upstream_message(response: httpx.Response, body: bytes) -> str:
    """The AI service's own words: its JSON `detail` (FastAPI's shape), else its plain text."""
    text = ""
    try:
        payload: Any = _any_decoder.decode(body)
    except msgspec.DecodeError:
        payload = None
    if isinstance(payload, dict):
        detail = payload.get("detail", payload.get("message", payload.get("error")))
        if isinstance(detail, str):
            text = detail
        elif isinstance(detail, list):
            text = "; ".join(
                str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail
            )
    elif payload is None and response.headers.get("content-type", "").startswith("text/plain"):
        text = body[: MAX_DETAIL_CHARS * 4].decode("utf-8", "replace")
    text = " ".join(text.replace("\x00", "").split())
    if not text:
        return f"{response.status_code} {_phrase(response.status_code)}".strip()
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
