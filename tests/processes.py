"""Real processes for multi-process tests: `service serve`, `service migrate`, `service demo-ai`.

Each runs as `python -m service.cli ...` on a free loopback port, as it would on a host of its
own, with its output kept in a log file that failures quote.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests import reaper
from tests.conftest import TEST_JWT_SECRET, TEST_MFA_ENCRYPTION_KEY

# Generous: on a machine shared by many jobs, `serve --workers 2` with tracing on once needed over 60 s.
START_TIMEOUT_SECONDS = 120

# Cheap hashing keeps logins fast; the limits are out of the way because every request of a test
# comes from 127.0.0.1.
SERVICE_TEST_ENV = {
    "ENVIRONMENT": "test",
    "SHUTDOWN_DRAIN_SECONDS": "0",
    "JWT_SECRET": TEST_JWT_SECRET,
    "MFA_ENCRYPTION_KEY": TEST_MFA_ENCRYPTION_KEY,
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


@contextmanager
def http_server_in_thread(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """A stdlib HTTP server on a free loopback port (`.server_port`), in a thread of this process,
    stopped when the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (a dependency that is down): connecting is refused."""
    return f"http://127.0.0.1:{free_port()}"


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
    """Start `service <command>` in `workdir`, its output going to `workdir/<log_name>`, in a process
    group of its own (tests.reaper)."""
    log = workdir / log_name
    with log.open("wb") as sink:
        process = reaper.popen(
            [sys.executable, "-m", "service.cli", *command],
            env=environ,
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return ServiceProcess(process, url, log)


def wait_until_answering(
    url: str,
    process: subprocess.Popen[bytes],
    output: Callable[[], str],
    seconds: float = START_TIMEOUT_SECONDS,
    ready: Callable[[httpx.Response], bool] = lambda _: True,
) -> None:
    """Until `process` answers GET `url` (with an answer `ready` accepts); fails, quoting `output()`,
    if it exits first or takes over `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if ready(httpx.get(url, timeout=1)):
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, f"exited during start-up:\n{output()}"
        assert time.monotonic() < deadline, f"did not start:\n{output()}"
        time.sleep(0.05)


def _wait_until_answering(started: ServiceProcess, path: str) -> None:
    wait_until_answering(f"{started.url}{path}", started.process, started.output)


def _stop(started: ServiceProcess) -> None:
    # SIGTERM to the parent first, not SIGKILL: with --workers the parent stops its worker
    # processes, pools and all; whatever of its group is left after 30 s is killed.
    reaper.stop(started.process, timeout=30)


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
