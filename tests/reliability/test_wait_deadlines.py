"""Every wait has a deadline, and the answer at the deadline is the documented one
(docs/reliability.md, "Every wait has a deadline"): a pool with no free connection is 503 with
`Retry-After`; a Redis that accepts connections and never answers lets requests through (fail
open, one warning). The listener catch-up is in test_listener_faults.py, a database restart in
test_database_restart.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.db import pool as service_db
from service.security.rate_limit import REDIS_DEADLINE_SECONDS
from tests.conftest import bearer, make_settings, make_user, running

MARGIN_SECONDS = 1.5  # scheduling on a loaded machine, not a measurement
SHORT_ACQUIRE_SECONDS = 1.0


@contextlib.asynccontextmanager
async def _silent_server() -> AsyncIterator[int]:
    """A TCP server on loopback that accepts every connection and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.transport.abort()


async def test_no_free_pooled_connection_within_the_deadline_is_503_with_retry_after(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deadline shortened so the test does not wait the production 10 s.
    monkeypatch.setattr(service_db, "POOL_ACQUIRE_TIMEOUT_SECONDS", SHORT_ACQUIRE_SECONDS)
    settings = make_settings(database_url, tmp_path, DATABASE_POOL_MIN="1", DATABASE_POOL_MAX="1")
    user_id = await make_user(db)
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            path, headers = f"/api/{user_id}/tasks", bearer(settings, user_id)
            async with app.state.pool.acquire():  # the only connection, held
                started = time.monotonic()
                refused = await http.post(path, json={"title": "queued"}, headers=headers)
                waited = time.monotonic() - started
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) > 0
            assert refused.headers["content-type"] == "application/problem+json"
            assert SHORT_ACQUIRE_SECONDS <= waited < SHORT_ACQUIRE_SECONDS + MARGIN_SECONDS
            created = await http.post(path, json={"title": "served"}, headers=headers)
            assert created.status_code == 201, "the pool serves again once a connection is free"


async def test_a_redis_that_never_answers_lets_requests_through_within_the_deadline(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    async with _silent_server() as port:
        settings = make_settings(
            database_url, tmp_path, REDIS_URL=f"redis://127.0.0.1:{port}/0", RATE_LIMIT_PER_MINUTE="5"
        )
        user_id = await make_user(db)
        async with running(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                path, headers = f"/api/{user_id}/tasks", bearer(settings, user_id)
                started = time.monotonic()
                answers = await asyncio.gather(*(http.get(path, headers=headers) for _ in range(8)))
                waited = time.monotonic() - started
    assert [answer.status_code for answer in answers] == [200] * 8, "fail open: not limited, not refused"
    assert waited < REDIS_DEADLINE_SECONDS + MARGIN_SECONDS, f"the requests waited {waited:.2f} s"
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    warnings = [entry for entry in logged if entry["logger"] == "service.rate_limit"]
    assert len(warnings) == 1, warnings
    assert "not rate limited" in warnings[0]["message"]
