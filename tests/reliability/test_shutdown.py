"""SIGTERM while a slow scan is in flight: it completes, new connections are refused, exit 0.

The AI service here holds its answer until the test releases it, so "in flight" is a fact the
test arranges rather than a race with a clock.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from tests.reliability.conftest import live_service, sign_up
from tests.scans.conftest import serve_in_thread

HOLD_LIMIT_SECONDS = 30
DEADLINE_SECONDS = 30


class HeldAi:
    """An AI service that answers each scan only once `release` is set."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        self.arrived.set()
        await asyncio.to_thread(self.release.wait, HOLD_LIMIT_SECONDS)
        risk = {"risk": "Budget overrun", "category": "Financial", "context": "The budget is tight."}
        body = json.dumps({"data": [risk], "source": "model"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def held_ai() -> Iterator[tuple[HeldAi, str]]:
    peer = HeldAi()
    try:
        with serve_in_thread(peer) as url:
            yield peer, url
    finally:
        peer.release.set()


def _refuses_connections(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def _service_connections(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'service' AND datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(
    database_url: str, tmp_path: Path, db: Any, held_ai: tuple[HeldAi, str]
) -> None:
    ai, ai_url = held_ai
    with live_service(database_url, tmp_path, ai_url, SHUTDOWN_DRAIN_SECONDS="1") as (process, base):
        address = (urlsplit(base).hostname or "", urlsplit(base).port or 0)
        with httpx.Client(base_url=base, timeout=60) as http:
            user = sign_up(http)
            with ThreadPoolExecutor(max_workers=1) as pool:
                scan: Future[httpx.Response] = pool.submit(
                    http.post, "/api/scan", headers=user.headers, files={"text": (None, "A tight budget.")}
                )
                assert ai.arrived.wait(DEADLINE_SECONDS), "the scan reached the AI service"
                assert _service_connections(database_url) > 0

                process.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + DEADLINE_SECONDS
                while not _refuses_connections(address):
                    assert time.monotonic() < deadline, "new connections are refused after the drain"
                    time.sleep(0.05)
                assert not scan.done(), "the scan is still in flight when the listener closes"

                ai.release.set()
                answer = scan.result(timeout=DEADLINE_SECONDS)
        assert answer.status_code == 201, answer.text
        assert answer.json()["data"][0]["category"] == "Financial"
        assert process.wait(timeout=DEADLINE_SECONDS) == 0

    deadline = time.monotonic() + DEADLINE_SECONDS
    while _service_connections(database_url):
        assert time.monotonic() < deadline, "the pool's connections are closed"
        time.sleep(0.05)
