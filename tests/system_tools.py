"""System tools some tests drive (PgBouncer, Chromium, node/npm, promtool, ...).

On a fresh machine a missing tool skips its tests with a reason that names the tool and how to
install it, so the README's `uv run pytest` passes as written. `.ci/run` installs every tool and
sets REQUIRE_SYSTEM_TOOLS=1, which turns those skips into failures: CI always runs everything.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_VARIABLE = "REQUIRE_SYSTEM_TOOLS"


def required() -> bool:
    return os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0", "false", "no")


def find_tool(*candidates: str) -> str | None:
    """The first of `candidates` (names on PATH or absolute paths) that exists."""
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def require_tool(name: str, install: str, *candidates: str) -> str:
    """The path of tool `name` (looked up as `candidates`, default `name`), or skip the test.

    `install` is the command that brings it, e.g. "apt-get install pgbouncer". With
    REQUIRE_SYSTEM_TOOLS=1 a missing tool fails the test instead of skipping it.
    """
    found = find_tool(*(candidates or (name,)))
    if found is not None:
        return found
    reason = f"{name} is not installed ({install}); .ci/run installs it"
    if required():
        pytest.fail(f"{reason}, and {REQUIRE_VARIABLE} is set", pytrace=False)
    pytest.skip(reason)
