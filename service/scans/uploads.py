"""The bounds of a scan upload: what its form may hold, how long it may take to arrive, and how
many a worker takes at once.

A worker answers `POST /api/scan` for at most SCAN_MAX_CONCURRENT_UPLOADS requests at a time,
from the first byte of the body to the last byte of the answer (the AI service's time included);
one more is 503 with Retry-After at once, before its body is read. With files above
SPOOL_BYTES written to a temporary file and sent on from there, a worker's memory stays within
about SCAN_MAX_CONCURRENT_UPLOADS x (SPOOL_BYTES + a text field's bytes, twice) above its
baseline, however many clients send at once (docs/reliability.md, "Scan uploads").
"""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

from service.compat.litestar import cached_form
from service.http.errors import ServiceUnavailable
from service.http.forms import FormLimits, close_uploads

# Files up to this size stay in memory; larger ones are written to a temporary file as they arrive.
SPOOL_BYTES = 1024 * 1024
# `force_llm` is a word: true/false, 1/0, on/off, yes/no.
FORCE_LLM_MAX_BYTES = 64
# file, text, force_llm, and room for a client that also sends an empty field or two.
MAX_SCAN_FORM_FIELDS = 8
BUSY_RETRY_AFTER_SECONDS = 2


def scan_form_limits(max_upload_bytes: int) -> FormLimits:
    return FormLimits(
        text_fields={"text": max_upload_bytes, "force_llm": FORCE_LLM_MAX_BYTES},
        file_fields=frozenset({"file"}),
        max_file_bytes=max_upload_bytes,
        spool_bytes=SPOOL_BYTES,
        max_fields=MAX_SCAN_FORM_FIELDS,
    )


IN_FLIGHT_KEY = "scan_uploads_in_flight"


class UploadSlots:
    """Route middleware of POST /api/scan: at most SCAN_MAX_CONCURRENT_UPLOADS in flight in this
    worker, counted on the app's state so /api and /api/v1 share the bound; the files of each
    are closed, and so deleted, once its answer is sent, whatever the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: Any = scope["litestar_app"].state
        limit: int = state.settings.scan_max_concurrent_uploads
        if state.get(IN_FLIGHT_KEY, 0) >= limit:
            raise ServiceUnavailable(
                f"this server is busy with {limit} scan uploads; retry shortly",
                retry_after=BUSY_RETRY_AFTER_SECONDS,
            )
        state[IN_FLIGHT_KEY] = state.get(IN_FLIGHT_KEY, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            state[IN_FLIGHT_KEY] -= 1
            form = cached_form(scope)
            if isinstance(form, dict):
                await close_uploads(
                    {name: value if isinstance(value, list) else [value] for name, value in form.items()}
                )
