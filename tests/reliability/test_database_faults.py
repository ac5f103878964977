"""PostgreSQL stops under write load and comes back: 503s meanwhile, no 500, nothing acknowledged lost.

The database is an embedded PostgreSQL of this test's own, so stopping it disturbs no other test.
AI-service faults are in tests/scans/test_ai_faults.py, identity-provider faults in
tests/providers/test_jwks_cache.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from service.app import create_app
from service.db import migrations
from service.db.embedded import EmbeddedPostgres
from tests.conftest import bearer, make_settings, running

WRITERS = 6
PAUSE_BETWEEN_WRITES = 0.01
RECOVERY_DEADLINE_SECONDS = 30


class Writers:
    """Clients creating tasks as fast as the service answers, keeping every answer."""

    def __init__(self, http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self.http = http
        self.url = url
        self.headers = headers
        self.acknowledged: list[int] = []
        self.statuses: Counter[int] = Counter()
        self.bad_answers: list[str] = []
        self.created_after_restart = asyncio.Event()
        self.restarted = False
        self._stop = asyncio.Event()

    async def _write(self, writer: int) -> None:
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            title = f"writer {writer} task {sequence}"
            response = await self.http.post(self.url, json={"title": title}, headers=self.headers)
            self.statuses[response.status_code] += 1
            if response.status_code == 201:
                self.acknowledged.append(response.json()["id"])
                if self.restarted:
                    self.created_after_restart.set()
            elif not (
                response.status_code == 503
                and int(response.headers.get("retry-after", "0")) > 0
                and response.headers["content-type"] == "application/problem+json"
            ):
                self.bad_answers.append(f"{response.status_code} {response.headers} {response.text}")
            await asyncio.sleep(PAUSE_BETWEEN_WRITES)

    async def run_until_stopped(self) -> None:
        await asyncio.gather(*(self._write(writer) for writer in range(WRITERS)))

    def stop(self) -> None:
        self._stop.set()

    async def until_count(self, status: int, count: int) -> None:
        while self.statuses[status] < count:
            await asyncio.sleep(0.01)


async def test_writes_get_503_while_the_database_is_down_and_none_acknowledged_is_lost(
    tmp_path: Path,
) -> None:
    server = EmbeddedPostgres(tmp_path / "db")
    url = server.start()
    try:
        migrations.apply_pending(url)
        connection = await asyncpg.connect(url)
        user_id: uuid.UUID = await connection.fetchval(
            "INSERT INTO users (email) VALUES ('writer@example.com') RETURNING id"
        )
        await connection.close()
        settings = make_settings(url, tmp_path)
        app = create_app(settings)
        async with running(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver", timeout=60
            ) as http:
                writers = Writers(http, f"/api/{user_id}/tasks", bearer(settings, user_id))
                load = asyncio.create_task(writers.run_until_stopped())

                await writers.until_count(201, 20)
                await asyncio.to_thread(server.stop)
                await writers.until_count(503, 20)
                assert await asyncio.to_thread(server.start) == url, "the database returns on its port"
                writers.restarted = True
                # A deadline, not a measurement: the pool reconnects by itself within seconds.
                await asyncio.wait_for(writers.created_after_restart.wait(), RECOVERY_DEADLINE_SECONDS)
                await writers.until_count(201, writers.statuses[201] + 20)

                writers.stop()
                await load

        assert not writers.bad_answers, writers.bad_answers[:5]
        assert set(writers.statuses) == {201, 503}
        connection = await asyncpg.connect(url)
        stored = await connection.fetch(
            "SELECT id FROM tasks WHERE id = ANY($1::bigint[])", writers.acknowledged
        )
        await connection.close()
        assert {row["id"] for row in stored} == set(writers.acknowledged), "every 201 was kept"
    finally:
        server.stop()
