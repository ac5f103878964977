"""The tools users point at /openapi.json accept it: Redocly's linter, openapi-typescript with a
strict TypeScript client over its types, and openapi-python-client, whose every module imports."""

from __future__ import annotations

import json
from pathlib import Path

from tests.openapi.conftest import PACKAGE, compile_typescript_client, openapi_python_client, run_tool
from tests.system_tools import require_tool

TYPED_CLIENT = Path(__file__).with_name("typed_client.ts")


def test_redocly_lint_finds_no_errors(npm_bin: Path, openapi_file: Path) -> None:
    result = run_tool([npm_bin / "redocly", "lint", openapi_file, "--format=json"])
    problems = json.loads(result.stdout)["problems"]
    errors = [
        f"{problem['ruleId']} at {problem['location'][0]['pointer']}: {problem['message']}"
        for problem in problems
        if problem["severity"] == "error"
    ]
    assert errors == []
    assert result.returncode == 0, result.stderr


def test_openapi_typescript_types_compile_in_a_strict_client(
    npm_bin: Path, openapi_file: Path, tmp_path: Path
) -> None:
    compiled = compile_typescript_client(npm_bin, openapi_file, TYPED_CLIENT, tmp_path)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def test_openapi_python_client_generates_modules_that_all_import(python_client_dir: Path) -> None:
    modules = sorted(
        ".".join(path.relative_to(python_client_dir).with_suffix("").parts).removesuffix(".__init__")
        for path in (python_client_dir / PACKAGE).rglob("*.py")
    )
    assert {
        f"{PACKAGE}.api.auth.login",
        f"{PACKAGE}.api.tasks.list_tasks",
        f"{PACKAGE}.api.scans.create_scan",
    } <= set(modules)
    # A fresh interpreter with what the generated client needs (httpx, attrs), warnings as errors.
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    uvx = require_tool("uvx", "pip install uv")
    result = run_tool(
        openapi_python_client(uvx, "python", "-W", "error", "-c", script, *modules), cwd=python_client_dir
    )
    assert result.returncode == 0, result.stderr
    login = (python_client_dir / PACKAGE / "api" / "auth" / "login.py").read_text()
    assert "body: LoginBody," in login, "login's body is required and has one type"
    body = (python_client_dir / PACKAGE / "models" / "login_body.py").read_text()
    assert "password: str\n" in body, "password is required"
