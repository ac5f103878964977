"""Reading form bodies (the login form, scan uploads) so that no form a client can send is a 500,
and none can hold the event loop.

`read_form` is Litestar's parser, for the small forms of /api/auth (their body limit is 8 KiB).
`read_bounded_form` is ours, for uploads: it parses the body as it arrives, chunk by chunk, and
refuses a form as soon as it breaks a bound (how many fields, which names, how large each), so
the work per request is bounded before anything is parsed whole. Litestar's own parsers are not
used there: its urlencoded parser splits the whole body at once (a 10 MiB form of tiny fields
held the event loop for 4.6-15 s, and its `lru_cache` kept up to 1024 such bodies alive), and
its multipart parser accepts 1000 parts and answers a part header over 4 KiB with 400 "Request
Entity Too Large".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from litestar import Request
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from multipart import (  # type: ignore[import-untyped]
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
)

from service.http.errors import PayloadTooLarge, invalid_field

UNDECODABLE_FORM = "form fields must be UTF-8 text"
# A part header line (Content-Disposition with the file name, Content-Type) may be this long:
# room for a 255-character file name even percent-encoded in `filename*` (4 x 255 x 3 bytes).
MAX_PART_HEADER_BYTES = 4096
MAX_PART_HEADERS = 8
# Urlencoded values are percent-decoded this many bytes at a time, letting other requests run in
# between: decoding 10 MiB of `%XX` takes 1-2.5 s of pure Python (3.7 ms per 16 KiB measured on a
# busy 2-core machine). A thread did not help: unquote_to_bytes splits its whole input in one C
# call holding the GIL, and /health waited up to 1.1 s behind it.
DECODE_CHUNK_BYTES = 16 * 1024
MAX_NAME_BYTES = 256


async def read_form(request: Request[Any, Any, Any]) -> FormMultiDict:
    """The parsed form. Litestar decodes each multipart part in the charset the part names and
    lets the errors escape: an unknown charset (LookupError) or bytes that are not text in it
    (UnicodeDecodeError) become a 400 here."""
    try:
        return await request.form()
    except (UnicodeDecodeError, LookupError):
        raise _undecodable() from None


@dataclass(frozen=True)
class FormLimits:
    """What a bounded form may hold: text fields by name with their largest size in bytes, file
    fields by name, the largest file, at most `max_fields` fields or parts in all, and files kept
    in memory up to `spool_bytes` (larger ones are written to a temporary file)."""

    text_fields: Mapping[str, int]
    file_fields: frozenset[str]
    max_file_bytes: int
    spool_bytes: int
    max_fields: int


def _undecodable() -> ValidationException:
    return ValidationException(
        UNDECODABLE_FORM, extra=[{"key": "body", "message": UNDECODABLE_FORM, "source": "body"}]
    )


def _too_many_fields(limits: FormLimits) -> ValidationException:
    names = ", ".join(f"`{name}`" for name in [*limits.file_fields, *limits.text_fields])
    return invalid_field("body", f"a form here has at most {limits.max_fields} fields ({names})")


def _unknown_field(name: str, limits: FormLimits) -> ValidationException:
    names = ", ".join(f"`{field}`" for field in [*limits.file_fields, *limits.text_fields])
    shown = name if len(name) <= 64 else name[:63] + "…"
    return invalid_field(shown or "body", f"unknown field `{shown}`; this form takes {names}")


def _field_too_large(name: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(detail=f"`{name}` is larger than {limit} bytes")


async def read_bounded_form(request: Request[Any, Any, Any], limits: FormLimits) -> dict[str, list[Any]]:
    """The form's fields by name (each a list of str or UploadFile, in the order sent).

    400 for a malformed body, too many fields, an unknown field name or text that is not UTF-8;
    413 for a field or file over its limit (the route's body limit still applies to the whole).
    On any refusal the files already spooled are closed."""
    media_type, options = request.content_type
    fields: dict[str, list[Any]] = {}
    try:
        if media_type == RequestEncodingType.MULTI_PART:
            boundary = options.get("boundary")
            if not boundary:
                raise ValidationException("multipart boundary missing in Content-Type")
            await _read_multipart(request.stream(), boundary, limits, fields)
        else:
            await _read_urlencoded(request.stream(), limits, fields)
    except BaseException:
        await close_uploads(fields)
        raise
    return fields


async def close_uploads(fields: Mapping[str, list[Any]]) -> None:
    for values in fields.values():
        for value in values:
            if isinstance(value, UploadFile):
                await value.close()


async def _read_multipart(
    stream: AsyncIterator[bytes], boundary: str, limits: FormLimits, fields: dict[str, list[Any]]
) -> None:
    try:
        parser = PushMultipartParser(
            boundary,
            max_header_size=MAX_PART_HEADER_BYTES,
            max_header_count=MAX_PART_HEADERS,
            max_segment_count=limits.max_fields,
        )
    except ParserError:
        raise ValidationException("invalid multipart boundary in Content-Type") from None
    segment: MultipartSegment | None = None
    upload: UploadFile | None = None
    text = bytearray()
    limit = 0
    received = False
    try:
        with parser:
            async for chunk in stream:
                if not chunk and not received:
                    return  # an empty body: no fields, as Litestar reads it
                received = True
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment, upload, text = event, None, bytearray()
                        limit = _check_part(segment, limits)
                        if segment.filename:
                            upload = UploadFile(
                                content_type=segment.content_type or "text/plain",
                                filename=segment.filename,
                                headers=dict(segment.headerlist),
                                max_spool_size=limits.spool_bytes,
                            )
                            fields.setdefault(segment.name, []).append(upload)
                    elif event:
                        assert segment is not None  # the parser yields a segment before its data
                        if segment.bytes_received > limit:
                            raise _field_too_large(segment.name, limit)
                        if upload is not None:
                            await upload.write(event)
                        else:
                            text.extend(event)
                    elif segment is not None:
                        if upload is not None:
                            await upload.seek(0)
                        else:
                            fields.setdefault(segment.name, []).append(_decode_part(text, segment.charset))
                        segment, upload, text = None, None, bytearray()
                if parser.closed:
                    break
    except ParserLimitReached as exc:
        raise _limit_reached(str(exc), limits) from None
    except ParserError as exc:
        raise ValidationException(f"invalid multipart/form-data: {exc}") from None


def _check_part(segment: MultipartSegment, limits: FormLimits) -> int:
    """The size limit of the part `segment` starts; an unknown name is a 400 before its bytes."""
    name = segment.name or ""
    if name in limits.file_fields:
        # A part with filename="" (an empty file input) is kept as a text field, as Litestar does.
        return limits.max_file_bytes
    if name in limits.text_fields:
        return limits.text_fields[name]
    raise _unknown_field(name, limits)


def _limit_reached(message: str, limits: FormLimits) -> ValidationException:
    if message == "Maximum segment count exceeded":
        return _too_many_fields(limits)
    if message == "Maximum segment header length exceeded":
        return invalid_field(
            "body",
            f"a part header (its Content-Disposition with the file name, or its Content-Type) is longer "
            f"than {MAX_PART_HEADER_BYTES} bytes",
        )
    if message == "Maximum segment header count exceeded":
        return invalid_field("body", f"a part has more than {MAX_PART_HEADERS} headers")
    return ValidationException(f"invalid multipart/form-data: {message}")


def _decode_part(raw: bytearray, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise _undecodable() from None


async def _read_urlencoded(
    stream: AsyncIterator[bytes], limits: FormLimits, fields: dict[str, list[Any]]
) -> None:
    # Counted as it arrives, so a body of a million tiny fields is refused at its 9th field.
    body = bytearray()
    separators = 0
    async for chunk in stream:
        separators += chunk.count(b"&")
        if separators >= limits.max_fields:
            raise _too_many_fields(limits)
        body.extend(chunk)
    for pair in body.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        del pair
        if len(raw_name) > MAX_NAME_BYTES:
            raise _unknown_field(raw_name[:MAX_NAME_BYTES].decode("latin-1"), limits)
        name = await _unquote(raw_name, MAX_NAME_BYTES)
        if name in limits.file_fields:
            fields.setdefault(name, []).append(await _unquote(raw_value, limits.max_file_bytes))
            continue
        limit = limits.text_fields.get(name)
        if limit is None:
            raise _unknown_field(name, limits)
        fields.setdefault(name, []).append(await _unquote(raw_value, limit, name))


async def _unquote(raw: bytearray, limit: int, name: str = "") -> str:
    """A urlencoded name or value as text: `+` is a space, `%XX` a byte, the bytes UTF-8. Each
    pass over a large value is a step of its own, so other requests run in between."""
    if len(raw) > 3 * limit + 3:  # more escapes than any value within the limit needs
        raise _field_too_large(name or "a form field", limit)
    raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        await asyncio.sleep(0)
        raw = await _percent_decode(raw)
    if len(raw) > limit:
        raise _field_too_large(name or "a form field", limit)
    await asyncio.sleep(0)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _undecodable() from None


async def _percent_decode(raw: bytes | bytearray) -> bytearray:
    if len(raw) <= DECODE_CHUNK_BYTES:
        return bytearray(unquote_to_bytes(bytes(raw)))
    decoded = bytearray()
    start = 0
    while start < len(raw):
        end = min(start + DECODE_CHUNK_BYTES, len(raw))
        if end < len(raw):
            # Never cut an escape in two: a `%` among the last two bytes starts the next chunk.
            cut = raw.rfind(b"%", end - 2, end)
            end = cut if cut > start else end
        decoded += unquote_to_bytes(bytes(raw[start:end]))
        start = end
        await asyncio.sleep(0)
    return decoded
