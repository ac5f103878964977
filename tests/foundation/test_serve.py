"""`service serve` as a real process: readiness drains on SIGTERM, exit code 0, several workers."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import TEST_JWT_SECRET


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(
    database_url: str, tmp_path: Path, *args: str, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    environ = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--no-migrate", *args],
        env=environ,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the server exited during start-up"
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
        yield process, base
    finally:
        if process.poll() is None:
            # SIGTERM, not SIGKILL: with --workers the parent must stop its worker processes,
            # which a killed parent leaves running, pools and all.
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_sigterm_turns_readiness_503_then_exits_0(database_url: str, tmp_path: Path) -> None:
    with serve(database_url, tmp_path, SHUTDOWN_DRAIN_SECONDS="2") as (process, base):
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        draining = httpx.get(f"{base}/health/ready", timeout=2)
        assert draining.status_code == 503
        assert draining.headers["retry-after"]
        assert httpx.get(f"{base}/health", timeout=2).status_code == 200
        assert process.wait(timeout=30) == 0


def test_several_workers_serve_the_same_port(database_url: str, tmp_path: Path) -> None:
    with serve(database_url, tmp_path, "--workers", "2") as (process, base):
        with httpx.Client(base_url=base) as http:
            assert all(http.get("/health/ready").status_code == 200 for _ in range(20))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
