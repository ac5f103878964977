"""Conditional requests (RFC 9110 section 13): strong ETags, 304 on If-None-Match, 412 on If-Match.

Two kinds of tag:
- a list's tag is a digest of the exact bytes sent (and of the headers that describe them), so it
  changes whenever any byte of the answer would;
- one row's tag is its PostgreSQL `xmin`, the id of the transaction that wrote the row's current
  version. Every UPDATE of the row, by any statement of any domain, gives it a new one, and the
  SQL can compare it in the same statement that writes (`WHERE ... AND xmin::text = ANY($n)`), so
  an If-Match check and its write are one atomic step: of two clients sending the same tag,
  exactly one wins. (Npgsql and EF Core use `xmin` as PostgreSQL's concurrency token the same
  way.) A tag could repeat only if the same row were rewritten exactly 2**32 transactions later.

A compressed answer is another representation and carries its own strong tag: the compression
layer appends COMPRESSED_SUFFIX inside the quotes (service.http.compression). A tag a client got with a
compressed answer still names the same state, so comparisons here drop that suffix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response
from litestar.enums import MediaType, ParamType
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIHeader, OpenAPIResponse, OpenAPIType, Operation, Parameter, Schema
from litestar.params import HeaderParameter
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from service.http.openapi import DocumentedHeader

COMPRESSED_SUFFIX = "-gzip"
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')


class PreconditionFailed(HTTPException):
    status_code = 412


def digest_tag(body: bytes, described_by: bytes = b"") -> str:
    """A strong tag for these exact bytes (and a header value that describes them, such as a
    total). SHA-256, cut to 128 bits: OpenSSL's runs at 3.5 us for a 20-task page here, blake2b
    at 8-12 us and MD5 at 7-13 us."""
    digest = hashlib.sha256(body)
    digest.update(b"\n" + described_by)  # msgspec's JSON has no raw newline: no two splits collide
    return f'"{digest.hexdigest()[:32]}"'


def request_header(scope: Mapping[str, Any], name: bytes) -> str | None:
    """One request header, read straight from the scope: a handler parameter for it cost the
    task list more CPU than the whole conditional check (Litestar's header extractor)."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def row_tag(version: str) -> str:
    """The tag of one row: its `xmin::text`."""
    return f'"{version}"'


def _opaque(tag: str) -> str:
    return tag.removesuffix(COMPRESSED_SUFFIX)


def _parse(value: str) -> list[tuple[bool, str]] | None:
    """[(weak, opaque-tag)] of a list of entity tags, or None when it is not one."""
    tags: list[tuple[bool, str]] = []
    position = 0
    while position < len(value):
        match = _ENTITY_TAG.match(value, position)
        if match is None or match.end() == position:
            return None
        tags.append((match.group(1) is not None, _opaque(match.group(2))))
        position = match.end()
    return tags or None


def not_modified(if_none_match: str | None, tag: str) -> bool:
    """Whether If-None-Match matches `tag` (weak comparison, as RFC 9110 section 13.1.2 asks);
    a value that is not a list of tags is ignored, as if absent."""
    value = if_none_match
    if value is None:
        return False
    if value.strip() == "*":
        return True
    tags = _parse(value)
    return tags is not None and any(opaque == tag[1:-1] for _, opaque in tags)


def with_tag(request: Request[Any, Any, Any], tag: str, content: Any, **kwargs: Any) -> Response[Any]:
    """`content` with its ETag, or an empty 304 when If-None-Match says the client holds it."""
    headers = {**kwargs.pop("headers", {}), "ETag": tag}
    if not_modified(request_header(request.scope, b"if-none-match"), tag):
        return Response(None, status_code=304, headers=headers)
    return Response(content, headers=headers, **kwargs)


class EncodedAnswer(Response[bytes]):
    """An answer whose status, headers and body are bytes already, sent as they are: the same
    start and body message Litestar would send for `Response(body, headers=...)` (lowercased
    names in the order given, then content-type and content-length), without Litestar's Response
    to ASGIResponse conversion (MutableScopeHeaders, header encoding, render). That conversion
    was 5-6 % of a task list's samples (py-spy, bench/cpu_per_request.py). Only for handlers
    with no route-level cookies, headers or background tasks, which the conversion would add."""

    __slots__ = ("_body", "_headers", "_status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        # Response.__init__ is not called: nothing reads what it sets once to_asgi_response
        # hands Litestar this object itself. The slots Litestar could look at are set.
        self.status_code = status
        self.content = body
        self.headers = {}
        self.cookies = []
        self.background = None
        self.media_type = MediaType.JSON
        self.encoding = "utf-8"
        self.response_type_encoders = {}
        self._status = status
        self._headers = headers
        self._body = body

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIApp:  # type: ignore[override]
        return self  # type: ignore[return-value]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": self._status,
            "headers": self._headers,
        }
        await send(start)
        body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": self._body, "more_body": False}
        await send(body)


def tagged_json(
    scope: Scope, tag: str, body: bytes, headers: dict[str, str]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The status, header pairs and body of a JSON answer encoded already: `headers` (lowercase
    names), then ETag; a 304 without body, content-type or content-length when If-None-Match
    says the client holds it."""
    encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    return tagged_json_pairs(scope, tag, body, encoded)


def tagged_json_pairs(
    scope: Scope, tag: str, body: bytes, encoded: list[tuple[bytes, bytes]]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """`tagged_json` for header pairs encoded already (lowercase names); appends to `encoded`."""
    encoded.append((b"etag", tag.encode("latin-1")))
    if not_modified(request_header(scope, b"if-none-match"), tag):
        return 304, encoded, b""
    encoded.append((b"content-type", b"application/json"))
    encoded.append((b"content-length", str(len(body)).encode()))
    return 200, encoded, body


def json_with_tag(
    request: Request[Any, Any, Any], tag: str, body: bytes, headers: dict[str, str]
) -> Response[Any]:
    """`with_tag` for a JSON body encoded already, as an EncodedAnswer (`tagged_json`)."""
    return EncodedAnswer(*tagged_json(request.scope, tag, body, headers))


def required_versions(if_match: str | None) -> list[str] | None:
    """The row versions If-Match allows, for `xmin::text = ANY($n)`: None when the header is
    absent or `*` (any current version), [] when no tag can match (only weak ones: If-Match
    compares strongly), so the write then changes nothing and the caller answers 412."""
    value = if_match
    if value is None or value.strip() == "*":
        return None
    tags = _parse(value)
    if tags is None:
        raise ValidationException('If-Match must be `*` or a list of entity tags such as "123"')
    return [opaque for weak, opaque in tags if not weak]


def stale() -> PreconditionFailed:
    return PreconditionFailed(
        "the resource changed since the ETag you sent in If-Match; fetch it again and retry"
    )


ETAG_HEADER = DocumentedHeader(
    name="ETag",
    description="A strong validator of this answer; send it in If-None-Match (GET) or If-Match (writes).",
    required=True,
)


@dataclass
class ConditionalGet(Operation):
    """A GET that honours If-None-Match: the handler reads the header itself (request_header)."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), _IF_NONE_MATCH]
        not_modified = (self.responses or {}).get("304")
        if isinstance(not_modified, OpenAPIResponse):
            not_modified.headers = {
                "ETag": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING),
                    description="The ETag the client holds, still current.",
                    required=True,
                )
            }


_IF_NONE_MATCH = Parameter(
    name="If-None-Match",
    param_in=ParamType.HEADER,
    required=False,
    description="ETags you hold: when one matches, the answer is 304 with no body.",
    schema=Schema(type=OpenAPIType.STRING),
)
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description=(
            "Change only if the resource is still at one of these ETags (`*`: if it exists); "
            "otherwise 412 and nothing is changed."
        ),
        required=False,
    ),
]
NOT_MODIFIED_RESPONSE = {
    304: ResponseSpec(
        data_container=None,
        description="Not modified: the ETag in If-None-Match is still current",
        generate_examples=False,
    )
}
