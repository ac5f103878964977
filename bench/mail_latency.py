"""Mail delivery latency: from the registration's transaction to the SMTP server's receipt.

    uv run python bench/mail_latency.py --database-url postgresql://postgres@127.0.0.1:5432/postgres [--mails 200]

Creates a scratch database on that server (dropped at the end), starts `service serve` (one
worker, its in-serve mail worker on) against it and an aiosmtpd server on loopback, registers
`--mails` accounts one after another, and reports, over the verification mails, the time from
the mail's row (`mail_messages.created_at`: the registration transaction's start, a few ms before
its commit) to the SMTP server accepting the message, as p50 / p90 / p99 / max.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Receipts:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        received = time.time()
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.at.setdefault(recipient, received)
        return "250 OK"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def _run(url: str, mails: int) -> None:
    receipts = Receipts()
    smtp_port = _free_port()
    controller = Controller(receipts, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="mail-latency-"))
    environ = {
        **os.environ,
        "DATABASE_URL": url,
        "DATA_DIR": str(workdir),
        "ENVIRONMENT": "test",
        "JWT_SECRET": "bench-" + "x" * 40,
        "LOG_LEVEL": "WARNING",
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "MAIL_WORKER": "on",
        "ARGON2_MEMORY_KIB": "8192",
        "ARGON2_TIME_COST": "1",
        "AUTH_RATE_LIMIT_PER_MINUTE": "1000000",
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "PRUNE_INTERVAL_MINUTES": "0",
        "SHUTDOWN_DRAIN_SECONDS": "0",
    }
    log = (workdir / "serve.log").open("wb")
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--migrate"],
        cwd=ROOT,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    await client.get("/health")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not start"
                    await asyncio.sleep(0.1)
            recipients = []
            for _ in range(mails):
                email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
                answer = await client.post(
                    "/api/auth/register", json={"email": email, "password": "correct horse battery staple"}
                )
                assert answer.status_code == 201, answer.text
                recipients.append(email)
                await asyncio.sleep(0.02)
        deadline = time.monotonic() + 60
        while len(receipts.at) < mails:
            assert time.monotonic() < deadline, f"only {len(receipts.at)} of {mails} mails arrived"
            await asyncio.sleep(0.05)
        connection = await asyncpg.connect(url)
        try:
            rows = await connection.fetch(
                "SELECT recipient, extract(epoch FROM created_at)::float8 AS at FROM mail_messages"
            )
        finally:
            await connection.close()
        latencies = [(receipts.at[row["recipient"]] - row["at"]) * 1000 for row in rows]
        print(
            f"mails: {len(latencies)}; commit -> SMTP receipt (ms): "
            f"p50 {statistics.median(latencies):.1f}, p90 {_percentile(latencies, 0.9):.1f}, "
            f"p99 {_percentile(latencies, 0.99):.1f}, max {max(latencies):.1f}"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"), required=False)
    parser.add_argument("--mails", type=int, default=200)
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url (or TEST_DATABASE_URL) is required")
    import psycopg

    name = f"mail_latency_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = urlunsplit(urlsplit(args.database_url)._replace(path=f"/{name}"))
        asyncio.run(_run(url, args.mails))
    finally:
        with psycopg.connect(args.database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
