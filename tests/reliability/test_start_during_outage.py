"""`service serve` starts while its database is down, and a worker restarted during an outage
does not stop its host.

Before: every worker opened its pool's connections at start-up. A host started during an outage
exited at once, and with `--workers 2` a worker that died during an outage was restarted by
uvicorn, failed to start, and uvicorn then stopped the whole host (a worker failing at start-up
is taken for a broken application). Now the pool starts empty (service/db/pool.py) and the host
answers 503 with `Retry-After` until the database is back, then serves.

The database is an embedded PostgreSQL of each test's own, so stopping it disturbs no other test.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from litestar import Litestar, get

from service.db import migrations
from service.db.embedded import EmbeddedPostgres
from service.http.exception_handlers import EXCEPTION_HANDLERS
from tests import reaper
from tests.conftest import bearer, make_settings
from tests.processes import ServiceProcess, run_service, serve, service_environment

STRONG = "plum orchard at midnight 42"
# Generous for a shared two-core machine: a spawned worker imports the whole service.
DEADLINE_SECONDS = 90


def _until(condition: Callable[[], bool], what: str, started: ServiceProcess) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert started.process.poll() is None, (
            f"the host exited while waiting for {what}:\n{started.output()}"
        )
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_SECONDS} s:\n{started.output()}"
        time.sleep(0.2)


def _status(url: str, **request: object) -> int | None:
    try:
        return httpx.request(**{"method": "GET", "url": url, "timeout": 15, **request}).status_code  # type: ignore[arg-type]
    except httpx.TransportError:
        return None


def _assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["retry-after"]) > 0
    assert answer.headers["content-type"] == "application/problem+json"


def _register(base: str, email: str) -> httpx.Response:
    return httpx.post(f"{base}/api/auth/register", json={"email": email, "password": STRONG}, timeout=30)


def _workers(parent: int) -> set[int]:
    """The uvicorn worker processes of `parent` (spawned children; not multiprocessing's resource tracker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent_pid = int(stat.rpartition(")")[2].split()[1])
        if parent_pid == parent and b"spawn_main" in command:
            found.add(int(entry.name))
    return found


def _kill_and_await_replacement(started: ServiceProcess, victim: int) -> None:
    """SIGKILL one worker; return once uvicorn's replacement has finished its start-up (its
    caller listener waits up to 5 s for the database), failing if the host exits meanwhile, as
    it did on the old code."""
    parent = started.process.pid
    others = _workers(parent) - {victim}
    startups = started.output().count("Application startup complete")
    os.kill(victim, signal.SIGKILL)
    _until(lambda: len(_workers(parent) - others - {victim}) == 1, "a restarted worker", started)
    _until(
        lambda: started.output().count("Application startup complete") > startups,
        "the restarted worker's start-up",
        started,
    )
    assert started.process.poll() is None, started.output()


def test_serve_starts_during_an_outage_answers_503_and_serves_once_the_database_is_back(
    tmp_path: Path,
) -> None:
    database = EmbeddedPostgres(tmp_path / "db")
    url = database.start()
    database.stop()  # never migrated: the host applies the migrations once the database is back
    try:
        with serve(url, tmp_path, migrate=None, LOG_LEVEL="INFO") as started:
            assert httpx.get(f"{started.url}/health", timeout=15).status_code == 200
            _assert_unavailable(httpx.get(f"{started.url}/health/ready", timeout=15))
            _assert_unavailable(_register(started.url, "during@example.com"))
            token = bearer(make_settings(url, tmp_path), uuid.uuid4())
            _assert_unavailable(httpx.get(f"{started.url}/api/scans", headers=token, timeout=30))

            assert database.start() == url, "the database returns on its port"
            _until(lambda: _status(f"{started.url}/health/ready") == 200, "readiness", started)
            assert _register(started.url, "after@example.com").status_code == 201
            login = httpx.post(
                f"{started.url}/api/auth/login",
                data={"username": "after@example.com", "password": STRONG},
                timeout=30,
            )
            assert login.status_code == 200, login.text
            assert "applied migrations" in started.output()
    finally:
        database.stop()


@pytest.mark.timeout(400)
def test_workers_killed_during_an_outage_are_restarted_and_the_host_stays_up(tmp_path: Path) -> None:
    database = EmbeddedPostgres(tmp_path / "db")
    url = database.start()
    migrations.apply_pending(url)
    try:
        with serve(url, tmp_path, "--workers", "2", LOG_LEVEL="INFO") as started:
            parent = started.process.pid
            _until(lambda: len(_workers(parent)) == 2, "two workers", started)
            assert _register(started.url, "before@example.com").status_code == 201

            database.stop()
            _assert_unavailable(_register(started.url, "during@example.com"))
            for victim in sorted(_workers(parent)):
                _kill_and_await_replacement(started, victim)
                assert httpx.get(f"{started.url}/health", timeout=15).status_code == 200
                _assert_unavailable(httpx.get(f"{started.url}/health/ready", timeout=15))
            restarted = _workers(parent)
            assert len(restarted) == 2, "both workers are ones restarted during the outage"

            assert database.start() == url
            _until(lambda: _status(f"{started.url}/health/ready") == 200, "readiness", started)
            # Every worker now serving was started during the outage; each request may reach either.
            for n in range(10):
                assert _register(started.url, f"after{n}@example.com").status_code == 201
            assert _workers(parent) == restarted
            assert started.process.poll() is None
    finally:
        database.stop()


async def test_a_table_not_created_yet_is_503_not_500(database_url: str) -> None:
    """Between the database's return and the end of the migrations `serve` applies then."""

    @get("/pending-table")
    async def pending_table() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.fetch("SELECT * FROM table_of_a_pending_migration")
        finally:
            await connection.close()

    app = Litestar([pending_table], exception_handlers=EXCEPTION_HANDLERS)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        answer = await http.get("/pending-table")
    _assert_unavailable(answer)
    assert answer.json()["detail"] == "the database schema is being migrated; retry shortly"


def test_service_worker_starts_during_an_outage_and_migrates_once_the_database_is_back(
    tmp_path: Path,
) -> None:
    database = EmbeddedPostgres(tmp_path / "db")
    url = database.start()
    database.stop()
    worker = run_service(
        ["worker"], tmp_path, "worker.log", service_environment(url, tmp_path, LOG_LEVEL="INFO")
    )
    try:
        _until(lambda: "worker started" in worker.output(), "the worker's start", worker)
        assert "cannot connect to DATABASE_URL" in worker.output()
        assert database.start() == url
        _until(lambda: "applied migrations: 0001.users" in worker.output(), "the migrations", worker)
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=60) == 0, worker.output()
    finally:
        reaper.stop(worker.process, timeout=30)
        database.stop()
