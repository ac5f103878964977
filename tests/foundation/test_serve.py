"""`service serve` as a real process: readiness drains on SIGTERM, exit code 0, several workers."""

import signal
import time
from pathlib import Path

import httpx

from tests.processes import serve


def test_sigterm_turns_readiness_503_then_exits_0(database_url: str, tmp_path: Path) -> None:
    with serve(database_url, tmp_path, SHUTDOWN_DRAIN_SECONDS="2") as server:
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        draining = httpx.get(f"{server.url}/health/ready", timeout=2)
        assert draining.status_code == 503
        assert draining.headers["retry-after"]
        assert httpx.get(f"{server.url}/health", timeout=2).status_code == 200
        assert server.process.wait(timeout=30) == 0


def test_several_workers_serve_the_same_port(database_url: str, tmp_path: Path) -> None:
    with serve(database_url, tmp_path, "--workers", "2") as server:
        with httpx.Client(base_url=server.url) as http:
            assert all(http.get("/health/ready").status_code == 200 for _ in range(20))
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
