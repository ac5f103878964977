"""The OpenAPI document as `service openapi` prints it, and the real tools that consume it: the
npm packages pinned in tests/openapi_tools (installed by `npm ci`) and openapi-python-client
(run by uvx, pinned in test_generators.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.processes import SERVICE_TEST_ENV
from tests.system_tools import npm_ci

TOOLS_DIR = Path(__file__).resolve().parent.parent / "openapi_tools"
NPM_CI_TIMEOUT_SECONDS = 300


@pytest.fixture(scope="session")
def openapi_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`service openapi -o FILE`, run as a user runs it, in a folder without a `.env`."""
    workdir = tmp_path_factory.mktemp("openapi")
    target = workdir / "openapi.json"
    subprocess.run(
        [sys.executable, "-m", "service.cli", "openapi", "-o", str(target)],
        cwd=workdir,
        env={**os.environ, **SERVICE_TEST_ENV, "DATA_DIR": str(workdir)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return target


@pytest.fixture(scope="session")
def document(openapi_file: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(openapi_file.read_text())
    return loaded


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every operation of the document."""
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    ]


@pytest.fixture(scope="session")
def npm_bin() -> Path:
    """tests/openapi_tools/node_modules/.bin, installed from the lockfile once per session."""
    npm_ci(TOOLS_DIR, NPM_CI_TIMEOUT_SECONDS, "--prefer-offline")
    return TOOLS_DIR / "node_modules" / ".bin"


def run_tool(command: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool without telemetry, update checks or colours."""
    environment = {
        **os.environ,
        "REDOCLY_TELEMETRY": "off",
        "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def compile_strictly(npm_bin: Path, source: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`tsc --strict` over `source` in `cwd`, as a frontend's bundler setup compiles it."""
    flags = ["--strict", "--noEmit", "--skipLibCheck", "--target", "es2022", "--module", "esnext"]
    flags += ["--moduleResolution", "bundler", "--lib", "es2022,dom"]
    return run_tool([npm_bin / "tsc", *flags, source], cwd=cwd)
