"""The processes of a run: servers started on loopback and stopped by process group, and wrk."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
REPORT_LUA = (ROOT / "bench" / "report.lua").read_text()
USERS = 1000
WRK_THREADS = 2
SETTLE_SECONDS = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is required: apt-get install wrk")
    return found


def wait_ready(
    url: str, process: subprocess.Popen[bytes], timeout: float = 60, any_status: bool = False
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            status = httpx.get(url, timeout=1).status_code
            if status == 200 or any_status:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


@contextmanager
def started(
    command: list[str], env: dict[str, str], ready_url: str, any_status: bool = False, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(ready_url, process, any_status=any_status)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    nested = [pid for child in pids for pid in worker_pids(child)]
    return [parent, *pids, *nested]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def run_wrk(
    wrk: str,
    url: str,
    script: str,
    *,
    connections: int,
    duration: int,
    threads: int = WRK_THREADS,
    timeout: int = 10,
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script + "\n" + REPORT_LUA)
    try:
        output = subprocess.run(
            [
                wrk,
                f"-t{min(threads, connections)}",
                f"-c{connections}",
                f"-d{duration}s",
                f"--timeout={timeout}s",
                "-s",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    if connections >= USERS:
        # Let the server finish with the connections wrk just closed. Measured: a 16-connection
        # run straight after 1000 connections had a p99 of 65-102 ms, and 15 ms 3 s later.
        time.sleep(SETTLE_SECONDS)
    match = re.search(r"WRK_JSON (\{.*\})", output)
    if not match:
        raise RuntimeError(f"wrk gave no summary:\n{output}")
    figures: dict[str, float] = json.loads(match.group(1))
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def floor_command(target: str, port: int, workers: int = 1) -> list[str]:
    """A floor app under the service's uvicorn settings (service/cli.py)."""
    return [
        *(sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", str(workers)),
        *("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"),
        *("--no-proxy-headers", "--no-server-header"),
    ]


def service_command(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", str(workers)]
