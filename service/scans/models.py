"""Request and response bodies of the scan routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar.datastructures import UploadFile

from service.integrations.ai_service.ai_service import Risk

UploadedDocument = Annotated[
    UploadFile, msgspec.Meta(description="A .txt, .md, .csv, .pdf or .docx document up to MAX_UPLOAD_BYTES.")
]
ScanText = Annotated[str, msgspec.Meta(description="Text to scan, sent along with or instead of a file.")]
FormBoolean = Annotated[
    str,
    msgspec.Meta(
        description="Ask the AI service for its LLM analysis: true/false, 1/0, on/off or yes/no (any case).",
        examples=["false"],
    ),
]


class ScanForm(msgspec.Struct, forbid_unknown_fields=True):
    """The multipart/form-data fields of POST /api/scan: a file, a text, or both."""

    # UNSET rather than None: a form field is absent or present, never null, and OpenAPI says so.
    file: UploadedDocument | msgspec.UnsetType = msgspec.UNSET
    text: ScanText | msgspec.UnsetType = msgspec.UNSET
    force_llm: FormBoolean | msgspec.UnsetType = msgspec.UNSET


class Scan(msgspec.Struct, frozen=True):
    """One saved scan; `id` and `created_at` repeat `scan_id` and `timestamp` for frontends reading those."""

    scan_id: uuid.UUID
    id: uuid.UUID
    filename: str | None
    data: list[Risk]
    source: Literal["llm", "model"]
    timestamp: datetime
    created_at: datetime


class ScanPage(msgspec.Struct, frozen=True):
    """A page of the caller's scans, newest first; pass `next_cursor` back as `cursor` for the next page."""

    items: list[Scan]
    next_cursor: str | None
