"""`pg_ctl restart` under authenticated writers on two hosts: every request is answered in time.

Host A is one `service serve`, host B another with `--workers 2`, on an embedded PostgreSQL of
this test's own, restarted (`pg_ctl restart`, fast mode) while writers on both hosts create
tasks. Every request must get 201, or 503 with `Retry-After`, within REQUEST_BOUND_SECONDS: the
pool acquisition deadline plus the listener catch-up deadline (docs/reliability.md, "Every wait
has a deadline"; a statement on a restarting server fails at once). Before, the caller listener
dropped the requests waiting on a heartbeat that the restart broke: some writes, already
committed, were never answered (5 of 13 runs of tests/reliability/test_database_faults.py hung).

The same database also crashes (`pg_ctl restart -m immediate`) right after a burst of wrong
passwords: the lockout those answers reported is still there after recovery.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.db import migrations
from service.db.embedded import EmbeddedPostgres
from service.db.pool import POOL_ACQUIRE_TIMEOUT_SECONDS
from service.security.caller_listener import CATCH_UP_SECONDS
from tests.accounts.conftest import STRONG_PASSWORD
from tests.processes import ServiceProcess, serve
from tests.reliability.conftest import sign_up

WRITERS_PER_HOST = 8
REQUEST_BOUND_SECONDS = POOL_ACQUIRE_TIMEOUT_SECONDS + CATCH_UP_SECONDS
# Scheduling on a loaded two-core machine; a request still unanswered then counts as a hang.
MARGIN_SECONDS = 3.0
RECOVERY_DEADLINE_SECONDS = 60


@dataclass
class Answers:
    statuses: Counter[str] = field(default_factory=Counter)
    acknowledged: list[int] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    slowest: float = 0.0
    created_after_restart: Counter[int] = field(default_factory=Counter)


class Writers:
    def __init__(self, hosts: list[ServiceProcess], path: str, headers: dict[str, str]) -> None:
        self.hosts = hosts
        self.path = path
        self.headers = headers
        self.answers = Answers()
        self.restarted = False
        self._stop = asyncio.Event()

    async def _write(self, host: int, http: httpx.AsyncClient, writer: int) -> None:
        answers = self.answers
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            started = time.monotonic()
            try:
                response = await http.post(
                    self.path,
                    json={"title": f"host {host} writer {writer} task {sequence}"},
                    headers=self.headers,
                )
            except httpx.TimeoutException:
                answers.statuses["unanswered"] += 1
                answers.bad.append(
                    f"host {host}: no answer within {REQUEST_BOUND_SECONDS + MARGIN_SECONDS} s"
                )
                continue
            except httpx.TransportError as exc:
                answers.statuses["transport error"] += 1
                answers.bad.append(f"host {host}: {exc!r}")
                continue
            answers.slowest = max(answers.slowest, time.monotonic() - started)
            answers.statuses[str(response.status_code)] += 1
            if response.status_code == 201:
                answers.acknowledged.append(response.json()["id"])
                if self.restarted:
                    answers.created_after_restart[host] += 1
            elif not (
                response.status_code == 503
                and int(response.headers.get("retry-after", "0")) > 0
                and response.headers["content-type"] == "application/problem+json"
            ):
                answers.bad.append(f"host {host}: {response.status_code} {response.text}")
            await asyncio.sleep(0.01)

    async def run(self) -> None:
        timeout = httpx.Timeout(REQUEST_BOUND_SECONDS + MARGIN_SECONDS)
        limits = httpx.Limits(max_connections=WRITERS_PER_HOST)
        clients = [
            httpx.AsyncClient(base_url=host.url, timeout=timeout, limits=limits) for host in self.hosts
        ]
        try:
            await asyncio.gather(
                *(
                    self._write(number, http, writer)
                    for number, http in enumerate(clients)
                    for writer in range(WRITERS_PER_HOST)
                )
            )
        finally:
            for http in clients:
                await http.aclose()

    def stop(self) -> None:
        self._stop.set()

    async def until(self, condition: object, deadline: float) -> None:
        assert callable(condition)
        started = time.monotonic()
        while not condition():
            assert time.monotonic() - started < deadline, f"timed out: {self.answers.statuses}"
            await asyncio.sleep(0.05)


async def _fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    """What the database at `url` holds after the test's run, on a connection of its own."""
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


@pytest.fixture
def database() -> Iterator[EmbeddedPostgres]:
    # Not under tmp_path: a pytest starting elsewhere on the machine chmods its root
    # (/tmp/pytest-of-<user>), which takes away the passage the server's user was granted, and
    # the stop below, run as that user, would then fail.
    with tempfile.TemporaryDirectory(prefix="restart-db-") as data_dir:
        server = EmbeddedPostgres(Path(data_dir))
        server.start()
        try:
            yield server
        finally:
            server.stop()


async def test_a_database_restart_under_writers_on_two_hosts_answers_every_request_in_time(
    tmp_path: Path, database: EmbeddedPostgres
) -> None:
    url = database.url
    migrations.apply_pending(url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with ExitStack() as stack:
        a = stack.enter_context(serve(url, tmp_path / "a"))
        b = stack.enter_context(serve(url, tmp_path / "b", "--workers", "2"))
        with httpx.Client(base_url=a.url, timeout=30) as http:
            user = sign_up(http)
        writers = Writers([a, b], f"/api/{user.id}/tasks", user.headers)
        load = asyncio.create_task(writers.run())
        try:
            await writers.until(lambda: writers.answers.statuses["201"] >= 40, RECOVERY_DEADLINE_SECONDS)
            # pg_ctl restart, fast mode: every session is ended, the server comes back on its port.
            await asyncio.to_thread(database._pg_ctl, "-w", "-m", "fast", "restart")
            writers.restarted = True
            await writers.until(
                lambda: min(writers.answers.created_after_restart[host] for host in (0, 1)) >= 20,
                RECOVERY_DEADLINE_SECONDS,
            )
        finally:
            writers.stop()
            await asyncio.wait_for(load, REQUEST_BOUND_SECONDS + MARGIN_SECONDS + 10)
        # asyncpg's pool logs its reconnection attempts as warnings; nothing of ours may be an
        # error. (uvicorn's own errors are left out: on an overloaded machine its supervisor may
        # kill a worker that misses a health check, and a worker started while the database is
        # down fails its start-up: a finding of its own, not what this test is about.)
        errors = [
            line
            for host in (a, b)
            for line in host.output().splitlines()
            if '"level":"ERROR"' in line and '"logger":"service.' in line
        ]

    answers = writers.answers
    print(f"restart under writers: {dict(answers.statuses)}, slowest answer {answers.slowest:.2f} s")
    assert not answers.bad, answers.bad[:5]
    assert set(answers.statuses) <= {"201", "503"}, answers.statuses
    assert answers.slowest < REQUEST_BOUND_SECONDS + MARGIN_SECONDS
    stored = await _fetch(url, "SELECT id FROM tasks WHERE id = ANY($1::bigint[])", answers.acknowledged)
    assert {row["id"] for row in stored} == set(answers.acknowledged), "every 201 was kept"
    assert not errors, errors[:3]


MAX_FAILURES = 5  # LOGIN_MAX_FAILURES's default


async def test_a_lockout_answered_before_a_database_crash_survives_it(
    tmp_path: Path, database: EmbeddedPostgres
) -> None:
    """The attempt counter commits without waiting for its WAL flush (count_password_attempt.sql);
    what makes that safe is that every verdict is answered only after a synchronous commit of the
    same request, which flushes the count with it. So: a burst of wrong passwords, answered; then
    the database crashes at once and recovers (`pg_ctl restart -m immediate`: no shutdown
    checkpoint, and WAL not yet written is lost). Every attempt answered 401 is still counted,
    and the email is still locked: the right password gets 429."""
    url = database.url
    migrations.apply_pending(url)
    with serve(url, tmp_path) as host:
        with httpx.Client(base_url=host.url, timeout=30) as http:
            user = sign_up(http)
        async with httpx.AsyncClient(base_url=host.url, timeout=30) as http:
            answers = await asyncio.gather(
                *(
                    http.post("/api/auth/login", data={"username": user.email, "password": f"wrong-{n}"})
                    for n in range(2 * MAX_FAILURES)
                )
            )
            statuses = Counter(answer.status_code for answer in answers)
            assert statuses == {401: MAX_FAILURES, 429: MAX_FAILURES}, statuses
            await asyncio.to_thread(database._pg_ctl, "-w", "-m", "immediate", "restart")
            deadline = time.monotonic() + RECOVERY_DEADLINE_SECONDS
            while True:
                right = await http.post(
                    "/api/auth/login", data={"username": user.email, "password": STRONG_PASSWORD}
                )
                if right.status_code != 503:
                    break
                assert time.monotonic() < deadline, right.text
                await asyncio.sleep(0.2)
    assert right.status_code == 429, right.text
    assert right.headers["content-type"] == "application/problem+json"
    stored = await _fetch(url, "SELECT failures FROM login_failures WHERE email = $1", user.email)
    assert len(stored) == 1, stored
    assert stored[0]["failures"] >= MAX_FAILURES, stored
