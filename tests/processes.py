"""Real processes for multi-process tests: `service serve`, `service migrate`, `service demo-ai`.

Each runs as `python -m service.cli ...` on a free loopback port, as it would on a host of its
own, with its output kept in a log file that failures quote.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import TEST_JWT_SECRET

# Generous: on a machine shared by many jobs, `serve --workers 2` with tracing on once needed over 60 s.
START_TIMEOUT_SECONDS = 120

# Cheap hashing keeps logins fast; the limits are out of the way because every request of a test
# comes from 127.0.0.1.
SERVICE_TEST_ENV = {
    "ENVIRONMENT": "test",
    "SHUTDOWN_DRAIN_SECONDS": "0",
    "JWT_SECRET": TEST_JWT_SECRET,
    "LOG_LEVEL": "WARNING",
    "DATABASE_POOL_MIN": "1",
    "DATABASE_POOL_MAX": "5",
    "ARGON2_MEMORY_KIB": "8192",
    "ARGON2_TIME_COST": "1",
    "RATE_LIMIT_PER_MINUTE": "1000000",
    "AUTH_RATE_LIMIT_PER_MINUTE": "1000000",
    "PRUNE_INTERVAL_MINUTES": "0",
    "SMTP_URL": "smtp://127.0.0.1:9",
    "MAIL_WORKER": "off",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def service_environment(database_url: str, workdir: Path, **env: str) -> dict[str, str]:
    return {**os.environ, **SERVICE_TEST_ENV, "DATABASE_URL": database_url, "DATA_DIR": str(workdir), **env}


def run_service(
    command: list[str], workdir: Path, log_name: str, environ: dict[str, str], url: str = ""
) -> ServiceProcess:
    """Start `service <command>` in `workdir`, its output going to `workdir/<log_name>`."""
    log = workdir / log_name
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", *command],
            env=environ,
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return ServiceProcess(process, url, log)


def _wait_until_answering(started: ServiceProcess, path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            httpx.get(f"{started.url}{path}", timeout=1)
            return
        except httpx.TransportError:
            pass
        assert started.process.poll() is None, f"exited during start-up:\n{started.output()}"
        assert time.monotonic() < deadline, f"did not start:\n{started.output()}"
        time.sleep(0.05)


def _stop(started: ServiceProcess) -> None:
    if started.process.poll() is None:
        # SIGTERM, not SIGKILL: with --workers the parent must stop its worker processes, which a
        # killed parent leaves running, pools and all.
        started.process.terminate()
        try:
            started.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            started.process.kill()
            started.process.wait()


@contextmanager
def serve(
    database_url: str, workdir: Path, *args: str, migrate: bool | None = False, **env: str
) -> Iterator[ServiceProcess]:
    """`service serve` on a free port, yielded once it answers /health (its pool is open by then).

    `migrate` adds --migrate or --no-migrate; None passes neither, leaving the environment's default.
    """
    port = free_port()
    flags = {True: ["--migrate"], False: ["--no-migrate"], None: []}[migrate]
    started = run_service(
        ["serve", "--port", str(port), *flags, *args],
        workdir,
        f"serve-{port}.log",
        service_environment(database_url, workdir, **env),
        url=f"http://127.0.0.1:{port}",
    )
    try:
        _wait_until_answering(started, "/health")
        yield started
    finally:
        _stop(started)


@contextmanager
def demo_ai(workdir: Path) -> Iterator[str]:
    """`service demo-ai` on a free port; yields its base URL."""
    port = free_port()
    started = run_service(
        ["demo-ai", "--port", str(port)],
        workdir,
        f"demo-ai-{port}.log",
        dict(os.environ),
        url=f"http://127.0.0.1:{port}",
    )
    try:
        _wait_until_answering(started, "/")
        yield started.url
    finally:
        _stop(started)
