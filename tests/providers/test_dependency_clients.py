"""Issue 23: one HTTP client per dependency. A real `service serve --workers 1` whose AI service
(a loopback server that never answers) holds every one of its connections with 100 scans in
flight, while the Better Auth key set (a JWKS server on loopback) rotates to a new key: a token
signed with the new key is still answered 200, promptly. On main the key fetch queued behind the
AI service's 100 connections: 401 after 5 s, then 401 for 30 s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.processes import serve
from tests.providers.conftest import BETTER_AUTH_JWKS_PATH, JwksServer, better_auth_claims, new_key, serving
from tests.reliability.conftest import sign_up
from tests.scans.conftest import FaultyAi, serve_in_thread

SCANS_IN_FLIGHT = 100
# Promptly: one JWKS fetch on loopback, on a machine shared with other work.
PROMPT_SECONDS = 3.0


@pytest.fixture
def silent_ai() -> Iterator[FaultyAi]:
    peer = FaultyAi()
    with serve_in_thread(peer) as url:
        peer.url = url
        yield peer


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_a_rotated_better_auth_key_is_200_while_the_ai_service_holds_every_connection(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, silent_ai: FaultyAi
) -> None:
    old_key, rotated_in = new_key("EdDSA"), new_key("EdDSA")
    provider = JwksServer(path=BETTER_AUTH_JWKS_PATH)
    provider.publish(old_key)
    with (
        serving(provider),
        serve(
            database_url,
            tmp_path,
            "--workers",
            "1",
            AI_SERVICE_URL=f"{silent_ai.url}/silent",
            AI_SERVICE_TIMEOUT_SECONDS="60",
            SCAN_MAX_CONCURRENT_UPLOADS=str(SCANS_IN_FLIGHT),
            BETTER_AUTH_URL=provider.url,
        ) as server,
    ):
        with httpx.Client(base_url=server.url, timeout=30) as http:
            scanner = sign_up(http)
            # The start-up key check has fetched the old key set by now; the old key works.
            old = http.get(
                "/api/auth/me",
                headers={"Authorization": f"Bearer {old_key.sign(better_auth_claims(provider.url))}"},
            )
            assert old.status_code == 200, old.text

        limits = httpx.Limits(max_connections=SCANS_IN_FLIGHT, max_keepalive_connections=SCANS_IN_FLIGHT)
        async with httpx.AsyncClient(base_url=server.url, timeout=90, limits=limits) as scans:
            in_flight = [
                asyncio.create_task(
                    scans.post("/api/scan", headers=scanner.headers, files={"text": (None, "tight budget")})
                )
                for _ in range(SCANS_IN_FLIGHT)
            ]
            try:
                await _until(lambda: len(silent_ai.seen) >= SCANS_IN_FLIGHT, 60)
                provider.publish(old_key, rotated_in)
                token = rotated_in.sign(better_auth_claims(provider.url))
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                    started = time.monotonic()
                    me = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
                    took = time.monotonic() - started
                assert me.status_code == 200, me.text
                assert took < PROMPT_SECONDS, f"{took:.1f} s"
                assert not any(task.done() for task in in_flight), (
                    "every scan was still waiting on the AI service"
                )
            finally:
                for task in in_flight:
                    task.cancel()
                await asyncio.gather(*in_flight, return_exceptions=True)
