"""A database outage is logged once (a warning when it starts, an info line with the count of
failed requests when the database answers again), and only the database's errors are 503s: any
other OSError or TimeoutError is a 500, logged as a bug."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from litestar import Litestar, get

from service.app import create_app
from service.db import migrations
from service.db.embedded import EmbeddedPostgres
from service.db.pool import DatabaseOutage, outage
from service.http.exception_handlers import EXCEPTION_HANDLERS
from tests.conftest import make_settings, running

STRONG = "plum orchard at midnight 42"


@contextlib.contextmanager
def recorded(logger_name: str, level: int) -> Iterator[list[logging.LogRecord]]:
    """The records of one logger at `level` and above (the app's logging setup replaces the root
    logger's handlers, pytest's capture among them)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def test_an_outage_is_one_warning_then_one_recovery_line_with_the_count(
    tmp_path: Path,
) -> None:
    server = EmbeddedPostgres(tmp_path / "db")
    url = server.start()
    try:
        migrations.apply_pending(url)
        app = create_app(make_settings(url, tmp_path))
        async with running(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                first = {"email": "first@example.com", "password": STRONG}
                assert (await http.post("/api/auth/register", json=first)).status_code == 201

                server.stop()
                with recorded("service.db", logging.INFO) as records:
                    failed = await asyncio.gather(
                        *(
                            http.post(
                                "/api/auth/register", json={"email": f"u{n}@example.com", "password": STRONG}
                            )
                            for n in range(8)
                        )
                    )
                    assert {answer.status_code for answer in failed} == {503}
                    assert all(answer.headers["retry-after"] for answer in failed)
                    assert {answer.json()["detail"] for answer in failed} == {
                        "the database is unavailable; retry shortly"
                    }
                    warnings = [r for r in records if r.levelno == logging.WARNING]
                    assert len(warnings) == 1, [r.getMessage() for r in warnings]
                    assert "database unavailable" in warnings[0].getMessage()

                    assert server.start() == url
                    await asyncio.sleep(DatabaseOutage.QUIET_SECONDS + 0.2)
                    statuses = []
                    for n in range(3):  # the pool may hand out a connection that died with the server
                        back = {"email": f"back{n}@example.com", "password": STRONG}
                        statuses.append((await http.post("/api/auth/register", json=back)).status_code)
                    assert statuses[-1] == 201, statuses
                    pool_lines = [r for r in records if r.name == "service.db"]
                    recovered = [r.getMessage() for r in pool_lines if r.levelno == logging.INFO]
                    assert len(recovered) == 1, recovered
                    failures = 8 + statuses.count(503)
                    assert f"{failures} requests failed meanwhile" in recovered[0]
                    assert not outage.ongoing
    finally:
        server.stop()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@get("/refused")
async def refused() -> None:
    await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres", timeout=5)


@get("/stray-oserror")
async def stray_oserror() -> None:
    Path("/nonexistent/directory/file").read_text()


@get("/stray-timeout")
async def stray_timeout() -> None:
    async with asyncio.timeout(0.01):
        await asyncio.sleep(1)


@pytest.fixture
async def http() -> httpx.AsyncClient:
    app = Litestar([refused, stray_oserror, stray_timeout], exception_handlers=EXCEPTION_HANDLERS)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_a_refused_database_connection_is_503(http: httpx.AsyncClient) -> None:
    answer = await http.get("/refused")
    assert answer.status_code == 503
    assert answer.json()["detail"] == "the database is unavailable; retry shortly"
    assert answer.headers["retry-after"]


@pytest.mark.parametrize("path", ["/stray-oserror", "/stray-timeout"])
async def test_an_oserror_or_timeout_outside_the_database_is_a_logged_500(
    http: httpx.AsyncClient, path: str
) -> None:
    with recorded("service.errors", logging.ERROR) as records:
        answer = await http.get(path)
    assert answer.status_code == 500
    assert answer.json()["detail"] == "internal error; it has been logged"
    [logged] = records
    assert logged.exc_info is not None
    assert "unhandled error" in logged.getMessage()
