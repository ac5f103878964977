"""Scan bodies against one real worker: the event-loop stall and the worker's memory.

    uv run python bench/scan_bodies.py --database postgresql://postgres@127.0.0.1:5432/postgres

Starts the demo AI service and `service serve --workers 1` (a fresh database on the given
server, dropped at the end), signs a user up, then:

- stall: one 10 MiB application/x-www-form-urlencoded scan of tiny fields (`a=&a=&...`) while
  /health is polled every 20 ms on the same worker: the slowest /health and the scan's answer;
- memory: 100 concurrent 10 MiB multipart scans (a text file) against the demo AI service: the
  worker's VmRSS (/proc/PID/status) before, at its peak (sampled every 50 ms) and 5 s after.

Everything binds 127.0.0.1 and stops at exit; every request has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

MIB = 1024 * 1024
PASSWORD = "correct horse battery staple 42"


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", *command], env=env, stdout=sink, stderr=subprocess.STDOUT
        )


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not start:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def stall(base: str, headers: dict[str, str]) -> None:
    body = b"a=&" * (10 * MIB // 3)
    latencies: list[float] = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=60) as http,
        httpx.AsyncClient(base_url=base, timeout=60) as health,
    ):
        await health.get("/health")  # its connection is open before the clock starts
        done = asyncio.Event()

        async def poll() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await health.get("/health")
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())
        await asyncio.sleep(0.3)
        started = time.perf_counter()
        answer = await http.post(
            "/api/scan",
            content=body,
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
        took = time.perf_counter() - started
        await asyncio.sleep(0.3)
        done.set()
        await poller
    print(
        f"stall: 10 MiB urlencoded scan of tiny fields -> {answer.status_code} in {took:.2f} s "
        f"({answer.text[:120]!r}); /health polled {len(latencies)} times, slowest "
        f"{max(latencies) * 1000:.0f} ms"
    )


async def memory(base: str, headers: dict[str, str], pid: int, count: int) -> None:
    # One risk sentence and one long word: 10 MiB that the demo AI service reads quickly.
    document = (b"The budget is tight.\n" + b"x" * (10 * MIB))[: 10 * MIB]
    baseline = rss_mib(pid)
    peak = baseline
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_mib(pid))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as http:

        async def one() -> int | str:
            try:
                answer = await http.post(
                    "/api/scan",
                    files={"file": ("plan.txt", document, "text/plain")},
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                return type(exc).__name__
            return answer.status_code

        started = time.perf_counter()
        statuses = await asyncio.gather(*(one() for _ in range(count)))
        took = time.perf_counter() - started
    await asyncio.sleep(5)
    sampling = False
    await sampler
    after = rss_mib(pid)
    print(
        f"memory: {count} concurrent 10 MiB multipart scans in {took:.1f} s, statuses "
        f"{dict(Counter(statuses))}; worker RSS baseline {baseline:.0f} MiB, peak {peak:.0f} MiB, "
        f"5 s after {after:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", required=True, help="an admin URL of a PostgreSQL server")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    name = f"scan_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = urlunsplit(urlsplit(args.database)._replace(path=f"/{name}"))
    try:
        with tempfile.TemporaryDirectory(prefix="scan-bench-") as workdir, ExitStack() as stack:
            work = Path(workdir)
            ai_port, port = free_port(), free_port()
            ai = start(["demo-ai", "--port", str(ai_port)], dict(os.environ), work / "ai.log")
            stack.callback(stop, ai)
            env = {
                **os.environ,
                "DATABASE_URL": database_url,
                "DATA_DIR": workdir,
                "ENVIRONMENT": "test",
                "JWT_SECRET": "bench-secret-" + "x" * 40,
                "LOG_LEVEL": "WARNING",
                "AI_SERVICE_URL": f"http://127.0.0.1:{ai_port}",
                "AI_SERVICE_TIMEOUT_SECONDS": "300",
                "RATE_LIMIT_PER_MINUTE": "1000000",
                "AUTH_RATE_LIMIT_PER_MINUTE": "1000000",
                "ARGON2_MEMORY_KIB": "8192",
                "ARGON2_TIME_COST": "1",
                "PRUNE_INTERVAL_MINUTES": "0",
            }
            served = start(
                ["serve", "--port", str(port), "--migrate", "--workers", "1"], env, work / "serve.log"
            )
            stack.callback(stop, served)
            base = f"http://127.0.0.1:{port}"
            wait_for(f"http://127.0.0.1:{ai_port}/", ai, work / "ai.log")
            wait_for(f"{base}/health", served, work / "serve.log")
            email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
            httpx.post(f"{base}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=30)
            token = httpx.post(
                f"{base}/api/auth/login", data={"username": email, "password": PASSWORD}, timeout=30
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            asyncio.run(stall(base, headers))
            asyncio.run(memory(base, headers, served.pid, args.count))
    finally:
        with psycopg.connect(args.database, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
