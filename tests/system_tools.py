"""System tools some tests drive (PgBouncer, Chromium, node/npm, promtool, ...).

On a fresh machine a missing tool skips its tests with a reason that names the tool and how to
install it, so the README's `uv run pytest` passes as written. `.ci/run` installs every tool and
sets REQUIRE_SYSTEM_TOOLS=1, which turns those skips into failures: CI always runs everything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REQUIRE_VARIABLE = "REQUIRE_SYSTEM_TOOLS"
NODE_INSTALL = "apt-get install nodejs npm"


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


def npm_ci(package_dir: Path, timeout_seconds: float, *flags: str) -> str:
    """Install the npm packages pinned by `package_dir`'s lockfile (`npm ci`) into its
    node_modules, or skip without node and npm; the node binary."""
    node = require_tool("node", NODE_INSTALL)
    npm = require_tool("npm", NODE_INSTALL)
    installed = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", *flags],
        cwd=package_dir,
        capture_output=True,
        text=True,
        timeout=timeout_seconds,
        check=False,
    )
    assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}\n{installed.stderr}"
    return node
