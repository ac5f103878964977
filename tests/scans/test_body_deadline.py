"""A scan body that stops arriving: 408 within SCAN_BODY_TIMEOUT_SECONDS (120 s in production,
2 s here; docs/reliability.md, "Every wait has a deadline"), and the worker answers everyone else
meanwhile. A real `service serve --workers 1` (so every request lands on the one worker), and a
client on a raw socket that sends the headers and part of a multipart body, then nothing."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from tests.processes import closed_port_url, serve
from tests.reliability.conftest import sign_up

BODY_TIMEOUT_SECONDS = 2.0
# Scheduling slack on a shared two-core machine, on top of the bound.
MARGIN_SECONDS = 3.0
BOUNDARY = "stalled-boundary"


def _stalled_upload(url: str, token: str) -> socket.socket:
    """Headers announcing a 100 kB body, then its first part header and a few bytes of the file."""
    parts = urlsplit(url)
    client = socket.create_connection((parts.hostname, parts.port), timeout=30)
    body_start = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="plan.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
        "The project has a tight budget and "
    ).encode()
    head = (
        "POST /api/scan HTTP/1.1\r\n"
        f"Host: {parts.hostname}:{parts.port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode()
    client.sendall(head + body_start)
    return client


def _read_answer(client: socket.socket) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        chunk = client.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def test_a_stalled_scan_body_is_408_within_the_bound_and_the_worker_keeps_serving(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    served = serve(
        database_url,
        tmp_path,
        "--workers",
        "1",
        SCAN_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT_SECONDS),
        AI_SERVICE_URL=closed_port_url(),  # never reached: the body never completes
    )
    with served as worker, httpx.Client(base_url=worker.url, timeout=30) as http:
        user = sign_up(http)
        client = _stalled_upload(worker.url, user.access_token)
        sent_at = time.monotonic()
        try:
            # While the upload is stalled the one worker answers others, at once.
            while time.monotonic() - sent_at < BODY_TIMEOUT_SECONDS - 0.5:
                started = time.monotonic()
                assert http.get("/health").status_code == 200
                assert http.get("/api/scans", headers=user.headers).status_code == 200
                assert time.monotonic() - started < 1.0
                time.sleep(0.1)
            answer = _read_answer(client)
            took = time.monotonic() - sent_at
        finally:
            client.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer
        assert b"application/problem+json" in head.lower()
        assert f"did not arrive within {BODY_TIMEOUT_SECONDS:g} seconds".encode() in body, body
        assert BODY_TIMEOUT_SECONDS - 0.5 <= took < BODY_TIMEOUT_SECONDS + MARGIN_SECONDS, took
        # And after it: the worker still serves.
        assert http.get("/api/scans", headers=user.headers).status_code == 200
