"""Every operation has a summary a reader understands: a phrase, not its handler's name."""

from __future__ import annotations

import re
from typing import Any

from tests.openapi.conftest import operations


def test_every_operation_summary_is_a_phrase_not_a_handler_name(document: dict[str, Any]) -> None:
    unreadable = [
        f"{method.upper()} {path}: {operation.get('summary')!r}"
        for method, path, operation in operations(document)
        # Litestar's default summary is the handler's name in PascalCase (`CreateScan`).
        if not operation.get("summary") or re.fullmatch(r"[A-Za-z0-9]+", operation["summary"])
    ]
    assert unreadable == []
    scans = {operation["operationId"]: operation["summary"] for _, _, operation in operations(document)}
    assert scans["createScan"] == "Scan a file or text for risks"
