"""docs/clients.md's clients work as the guide shows them: the TypeScript one (openapi-fetch over
openapi-typescript's types) compiles under `tsc --strict` against the service's document, and the
Python one (openapi-python-client) signs in, creates and lists tasks against a served service."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from tests.openapi.conftest import compile_typescript_client, openapi_python_client
from tests.processes import serve
from tests.system_tools import require_tool

FETCH_CLIENT = Path(__file__).with_name("fetch_client.ts")
PYTHON_EXAMPLE = Path(__file__).with_name("python_client_example.py")
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "clients.md"


def test_the_guides_openapi_fetch_client_compiles_in_strict_mode(
    npm_bin: Path, openapi_file: Path, tmp_path: Path
) -> None:
    # As the guide says: a request field with a default (a task's is_completed) stays optional.
    compiled = compile_typescript_client(
        npm_bin, openapi_file, FETCH_CLIENT, tmp_path, "--default-non-nullable", "false"
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def test_the_guides_python_client_signs_in_and_lists_tasks(
    python_client_dir: Path, database_url: str, tmp_path: Path
) -> None:
    uvx = require_tool("uvx", "pip install uv")
    email = f"client-{tmp_path.name[-12:]}@example.com".lower()
    password = "plum orchard at midnight 42"
    with serve(database_url, tmp_path) as server:
        registered = httpx.post(
            f"{server.url}/api/auth/register", json={"email": email, "password": password}, timeout=30
        )
        assert registered.status_code == 201, registered.text
        environ = {
            **os.environ,
            "SERVICE_URL": server.url,
            "SERVICE_EMAIL": email,
            "SERVICE_PASSWORD": password,
        }
        ran = subprocess.run(
            # `-c` puts the working directory, which holds the generated package, on sys.path.
            [
                str(part)
                for part in openapi_python_client(
                    uvx, "python", "-c", f"import runpy; runpy.run_path({str(PYTHON_EXAMPLE)!r})"
                )
            ],
            cwd=python_client_dir,
            env=environ,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.strip().endswith("Buy groceries"), ran.stdout


def _code(path: Path) -> str:
    """A file's code without its leading comment or docstring."""
    text = path.read_text()
    if text.startswith('"""'):
        return text.split('"""', 2)[2].strip()
    return "\n".join(line for line in text.splitlines() if not line.startswith("//")).strip()


def test_the_guide_shows_the_clients_the_tests_run() -> None:
    """The guide's code blocks are these files' code, so what it shows is what compiled and ran."""
    guide = GUIDE.read_text()
    assert _code(FETCH_CLIENT) in guide
    assert _code(PYTHON_EXAMPLE) in guide
