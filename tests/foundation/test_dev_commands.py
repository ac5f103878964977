"""Development commands: `service serve --reload` restarts on a change under service/, sql/ or
migrations/ (and refuses several workers); `service db-stop` stops the embedded PostgreSQL that
`service db-url` leaves running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from service.db.embedded import EmbeddedPostgres
from service.db.paths import SQL_DIR
from tests.processes import serve


def test_reload_restarts_the_server_when_a_sql_file_changes(database_url: str, tmp_path: Path) -> None:
    with serve(database_url, tmp_path, "--reload", LOG_LEVEL="INFO") as server:
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        probe = SQL_DIR / f"_reload_probe_{uuid.uuid4().hex[:8]}.sql"
        try:
            probe.write_text("SELECT 1\n")
            deadline = time.monotonic() + 60
            while "Reloading" not in server.output():
                assert time.monotonic() < deadline, (
                    f"no reload after {probe.name} appeared:\n{server.output()}"
                )
                time.sleep(0.2)
        finally:
            probe.unlink(missing_ok=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"did not answer after the reload:\n{server.output()}"
            time.sleep(0.2)
    assert server.process.returncode == 0, server.output()


def _cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "WEB_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=workdir,
        env={**environ, "DATA_DIR": str(workdir), "ENVIRONMENT": "development"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_reload_refuses_several_workers(tmp_path: Path) -> None:
    refused = _cli(tmp_path, "serve", "--reload", "--workers", "2")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "service serve: --reload runs a single worker; drop --workers 2 (or WEB_CONCURRENCY) to use it"
    )


def test_db_stop_stops_the_server_db_url_left_running(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path)
    try:
        started = _cli(tmp_path, "db-url")
        assert started.returncode == 0, started.stderr
        assert "keeps running" in started.stderr
        assert server.running_port() is not None, "db-url leaves the server running"

        stopped = _cli(tmp_path, "db-stop")
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == f"stopped the embedded PostgreSQL ({server.pgdata})"
        assert server.running_port() is None

        again = _cli(tmp_path, "db-stop")
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == f"the embedded PostgreSQL ({server.pgdata}) is not running"
    finally:
        server.stop()
