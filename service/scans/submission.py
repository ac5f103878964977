"""Turn the POST /api/scan form into what the AI service is sent, refusing what it should not get.

Accepted documents, judged by file extension and declared content type together:
plain text (.txt), Markdown (.md, .markdown), CSV (.csv), PDF (.pdf) and Word (.docx).
A generic declared type (application/octet-stream, as curl sends for unknown extensions)
defers to the extension; a file without an extension is judged by its declared type.
PDF and DOCX must also start like one, so a renamed file is refused here, not by the AI service.
"""

from __future__ import annotations

import os
import posixpath
import unicodedata
from typing import IO

import msgspec
from litestar.datastructures import UploadFile
from litestar.exceptions import ValidationException

from service.http.errors import PayloadTooLarge, UnsupportedMediaType
from service.integrations.ai_service.ai_service import Document, ScanRequest
from service.scans.models import ScanForm

MAX_FILENAME_CHARS = 255
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# Explicit direction marks, embeddings, overrides and isolates: "\u202egpj.exe" shows as "exe.jpg".
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
HIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


class DocumentKind(msgspec.Struct, frozen=True):
    content_type: str
    extensions: frozenset[str]
    declared_types: frozenset[str]
    magic: bytes = b""


KINDS = (
    DocumentKind("text/plain", frozenset({".txt", ".text"}), frozenset({"text/plain"})),
    DocumentKind(
        "text/markdown",
        frozenset({".md", ".markdown"}),
        frozenset({"text/markdown", "text/x-markdown", "text/plain"}),
    ),
    DocumentKind(
        "text/csv",
        frozenset({".csv"}),
        # Windows browsers announce .csv as Excel's type.
        frozenset({"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel"}),
    ),
    DocumentKind("application/pdf", frozenset({".pdf"}), frozenset({"application/pdf"}), b"%PDF-"),
    DocumentKind(DOCX, frozenset({".docx"}), frozenset({DOCX}), b"PK\x03\x04"),
)
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
TRUE_WORDS = frozenset({"true", "1", "on", "yes"})
FALSE_WORDS = frozenset({"", "false", "0", "off", "no"})
ACCEPTED_SUMMARY = ".txt, .md, .csv (text/plain, text/markdown, text/csv), .pdf (application/pdf) or .docx"


async def read_submission(form: ScanForm, max_upload_bytes: int) -> ScanRequest:
    """Validate the form: 400 for no input or NUL characters, 413 too large, 415 a type we do not take."""
    text = form.text if isinstance(form.text, str) and form.text.strip() else None
    if text is not None:
        _refuse_nul(text, "text")
        if len(text.encode()) > max_upload_bytes:
            raise PayloadTooLarge(detail=f"text is larger than {max_upload_bytes} bytes")
    upload = form.file if isinstance(form.file, UploadFile) else None
    document = await _read_document(upload, max_upload_bytes) if upload is not None else None
    if text is None and document is None:
        message = "the file is empty" if upload is not None else "provide a file or a non-empty text"
        raise _invalid("body", message)
    force_llm = form.force_llm if isinstance(form.force_llm, str) else None
    return ScanRequest(text=text, document=document, force_llm=_form_boolean(force_llm))


async def _read_document(upload: UploadFile, max_upload_bytes: int) -> Document | None:
    """The document to send on. A file spooled to disk is sent from there, never read whole into
    memory; the route's UploadSlots closes it once the answer is sent."""
    filename = _clean_filename(upload.filename)
    kind = _kind_of(filename, _media_type(upload.content_type))
    size = upload.file.seek(0, os.SEEK_END)  # an lseek, or a memory buffer's length
    upload.file.seek(0)
    if size > max_upload_bytes:
        raise PayloadTooLarge(detail=f"the file is larger than {max_upload_bytes} bytes")
    if not size:
        return None
    if kind.magic:
        head = await upload.read(len(kind.magic))
        await upload.seek(0)
        if head != kind.magic:
            raise UnsupportedMediaType(detail=f"{filename} is not a valid {kind.content_type} document")
    content: bytes | IO[bytes] = upload.file if upload.rolled_to_disk else await upload.read()
    return Document(filename=filename, content_type=kind.content_type, content=content)


def _clean_filename(raw: str) -> str:
    # Some browsers send the client's full path; only the last part is the file's name.
    name = posixpath.basename(raw.replace("\\", "/"))
    _refuse_nul(name, "file")
    name = "".join(char for char in name if not _is_hidden_control(char)).strip()
    if not name:
        raise _invalid("file", "the file has no name")
    return name[-MAX_FILENAME_CHARS:]


def _is_hidden_control(char: str) -> bool:
    """Characters a saved filename must not carry into lists, logs and terminals: C0 and C1
    controls (CR, LF, ESC...), line and paragraph separators, and bidi controls. Every other
    character, any script or emoji (zero-width joiners included), is kept."""
    return char in BIDI_CONTROLS or unicodedata.category(char) in HIDDEN_CATEGORIES


def _media_type(declared: str) -> str:
    return declared.split(";", 1)[0].strip().lower()


def _kind_of(filename: str, declared: str) -> DocumentKind:
    extension = posixpath.splitext(filename)[1].lower()
    if extension:
        for kind in KINDS:
            if extension in kind.extensions:
                if declared in GENERIC_TYPES or declared in kind.declared_types:
                    return kind
                raise UnsupportedMediaType(
                    detail=f"{filename} is declared as {declared}, which does not match its extension"
                )
        raise UnsupportedMediaType(detail=f"{extension} files are not accepted; send {ACCEPTED_SUMMARY}")
    for kind in KINDS:
        if declared in kind.declared_types:
            return kind
    raise UnsupportedMediaType(
        detail=f"{declared or 'an untyped file'} is not accepted; send {ACCEPTED_SUMMARY}"
    )


def _form_boolean(value: str | None) -> bool:
    # An unchecked HTML checkbox sends nothing, a checked one "on"; other clients send true/1.
    word = (value or "").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise _invalid("force_llm", "must be true or false (also 1/0, on/off, yes/no)")


def _refuse_nul(value: str, field: str) -> None:
    if "\x00" in value:
        raise _invalid(field, "must not contain NUL characters")


def _invalid(field: str, message: str) -> ValidationException:
    return ValidationException(message, extra=[{"key": field, "message": message, "source": "body"}])
