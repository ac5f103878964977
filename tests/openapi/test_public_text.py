"""Public text names the product's things (tasks, risk scans, accounts), never the internal
requirement documents they came from ("seed 002"): a reader of the API or the guides would not
know what a seed is."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SEED = re.compile(r"\bseeds?\b", re.IGNORECASE)
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def test_the_openapi_document_never_says_seed(document: dict[str, Any]) -> None:
    assert SEED.findall(json.dumps(document)) == []


@pytest.mark.parametrize("guide", GUIDES, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_readme_and_docs_never_say_seed(guide: Path) -> None:
    lines = [line for line in guide.read_text(encoding="utf-8").splitlines() if SEED.search(line)]
    assert lines == []
