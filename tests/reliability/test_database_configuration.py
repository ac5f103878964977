"""A DATABASE_URL that is not a URL, or that cannot be reached: one line naming it, and a non-zero exit.

Before: `DATABASE_URL=notaurl` connected to the local server's database `otaurl`, and an
unreachable DATABASE_URL printed a 30-line traceback. `service serve` without an explicit
`--migrate` starts anyway, answering 503 until the database answers
(tests/reliability/test_start_during_outage.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import free_port, service_environment

COMMAND_TIMEOUT_SECONDS = 60


def _run(tmp_path: Path, database_url: str, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *command],
        env=service_environment(database_url, tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def _only_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize("command", [["serve", "--no-migrate"], ["migrate"]])
@pytest.mark.parametrize("value", ["notaurl", "localhost:5432/app", "mysql://db/app", "http://[::1/x"])
def test_a_database_url_that_is_not_a_postgresql_url_is_refused(
    tmp_path: Path, command: list[str], value: str
) -> None:
    result = _run(tmp_path, value, *command)
    assert result.returncode == 2
    assert _only_line(result.stderr) == (
        "configuration error: invalid DATABASE_URL: not a postgresql:// or postgres:// URL"
    )
    assert result.stdout == ""


def test_a_listen_url_that_is_not_a_postgresql_url_is_refused(tmp_path: Path, database_url: str) -> None:
    result = _run(tmp_path, database_url, "serve", "--no-migrate", DATABASE_LISTEN_URL="otaurl")
    assert result.returncode == 2
    assert _only_line(result.stderr) == (
        "configuration error: invalid DATABASE_LISTEN_URL: not a postgresql:// or postgres:// URL"
    )


@pytest.mark.parametrize("command", [["serve", "--migrate"], ["migrate"]])
def test_an_unreachable_database_is_one_line_naming_the_variable(tmp_path: Path, command: list[str]) -> None:
    port = free_port()  # nothing listens there
    result = _run(tmp_path, f"postgresql://app:hunter2-secret@127.0.0.1:{port}/app", *command)
    assert result.returncode == 1
    line = _only_line(result.stderr)
    assert line.startswith(f"database error: cannot connect to DATABASE_URL (127.0.0.1:{port}): "), line
    assert "refused" in line.lower(), line
    assert "hunter2" not in result.stderr + result.stdout


def test_a_database_that_refuses_the_password_is_one_line(tmp_path: Path, database_url: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(database_url)
    wrong = urlunsplit(parts._replace(netloc=f"no_such_role:wrong@{parts.hostname}:{parts.port or 5432}"))
    result = _run(tmp_path, wrong, "migrate")
    assert result.returncode == 1
    line = _only_line(result.stderr)
    assert line.startswith("database error: cannot connect to DATABASE_URL ("), line
    assert "no_such_role" in line, line
