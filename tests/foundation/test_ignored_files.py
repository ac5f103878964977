"""What running the suite leaves in the work tree (.hypothesis/, .schemathesis/) stays out of git
and out of the image's build context."""

from __future__ import annotations

import re
import subprocess

import pytest

from service.settings import PROJECT_ROOT
from tests.system_tools import require_tool

LEFT_BY_TESTS = [
    ".hypothesis/examples/0a1b/2c3d",
    ".schemathesis/cache/report.json",
    "service/.hypothesis/examples/0a1b",
    "tests/.schemathesis/cache/report.json",
]
SHIPPED = ["service/app.py", "sql/tasks/create_task.sql", "uv.lock"]


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as docker reads it: `*` within a name, `**` across directories."""
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/"))
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def _in_build_context(path: str) -> bool:
    """The last pattern matching the path or one of its parent directories decides, `!` re-includes."""
    lines = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    prefixes = ["/".join(path.split("/")[:depth]) for depth in range(1, path.count("/") + 2)]
    included = True
    for pattern in patterns:
        regex = _dockerignore_regex(pattern.removeprefix("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            included = pattern.startswith("!")
    return included


def test_test_leftovers_are_ignored_by_git() -> None:
    git = require_tool("git", "apt-get install git")
    inside = subprocess.run(
        [git, "rev-parse", "--is-inside-work-tree"], cwd=PROJECT_ROOT, capture_output=True
    )
    if inside.returncode != 0:
        pytest.skip("not a git checkout")
    for path in LEFT_BY_TESTS:
        ignored = subprocess.run([git, "check-ignore", "--no-index", "-q", path], cwd=PROJECT_ROOT)
        assert ignored.returncode == 0, f"git would offer to commit {path}"


def test_test_leftovers_stay_out_of_the_image() -> None:
    assert [path for path in SHIPPED if not _in_build_context(path)] == []
    assert [path for path in LEFT_BY_TESTS if _in_build_context(path)] == []
