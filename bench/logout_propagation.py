"""How long another host keeps accepting a token after its logout returned. Not part of the service.

    uv run python bench/logout_propagation.py [--samples 300] [--load 32] [--probes 4]

A fresh embedded PostgreSQL and two `service serve` processes on it: A (one worker) and B
(`--workers 2`). `--load` clients keep B busy with task lists meanwhile. Each sample logs in on
A, warms B's caches with the new token, logs out on A, and from the moment the 204 arrives
`--probes` connections to B (spread over its workers) send the token until each gets 401.
Reported: how many logouts were followed by a 200 on B for a request *sent after* the 204, and
how long after the 204 the last such request was sent (the window).
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
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import migrations  # noqa: E402
from service.db.embedded import EmbeddedPostgres  # noqa: E402

PASSWORD = "correct horse battery staple"
ENVIRONMENT = {
    "ENVIRONMENT": "test",
    "JWT_SECRET": "bench-secret-" + "x" * 40,
    "LOG_LEVEL": "WARNING",
    "SHUTDOWN_DRAIN_SECONDS": "0",
    "ARGON2_MEMORY_KIB": "8192",
    "ARGON2_TIME_COST": "1",
    "RATE_LIMIT_PER_MINUTE": "100000000",
    "AUTH_RATE_LIMIT_PER_MINUTE": "100000000",
    "PRUNE_INTERVAL_MINUTES": "0",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(url: str, workdir: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    environ = {**os.environ, **ENVIRONMENT, "DATABASE_URL": url, "DATA_DIR": str(workdir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--no-migrate", "--port", str(port), *args],
        env=environ,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "serve.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"serve did not start: {(workdir / 'serve.log').read_text()[-2000:]}")
        time.sleep(0.1)


async def _send(http: httpx.AsyncClient, method: str, path: str, **kwargs: object) -> httpx.Response:
    """Once more after a transport error: a server may close a keep-alive connection just as it
    is reused (its idle timeout), which says nothing about what is measured here."""
    try:
        return await http.request(method, path, **kwargs)  # type: ignore[arg-type]
    except httpx.TransportError:
        return await http.request(method, path, **kwargs)  # type: ignore[arg-type]


async def _register(http: httpx.AsyncClient) -> tuple[str, str]:
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    registered = await http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    registered.raise_for_status()
    return email, registered.json()["id"]


async def _login(http: httpx.AsyncClient, email: str) -> str:
    response = await _send(http, "POST", "/api/auth/login", data={"username": email, "password": PASSWORD})
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


async def _load(b: str, path: str, headers: dict[str, str], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=b, timeout=30) as http:
        while not stop.is_set():
            await _send(http, "GET", path, headers=headers)


async def _probe(http: httpx.AsyncClient, path: str, headers: dict[str, str], after: float) -> float | None:
    """Send until 401; the last 200's send time relative to `after`, or None."""
    last_accepted = None
    while True:
        sent = time.perf_counter()
        status = (await _send(http, "GET", path, headers=headers)).status_code
        if status == 401:
            return last_accepted
        if status == 200:
            last_accepted = sent - after


async def measure(a: str, b: str, samples: int, load: int, probes: int) -> None:
    async with httpx.AsyncClient(base_url=a, timeout=30) as on_a:
        loader_email, loader_id = await _register(on_a)
        loader_headers = {"Authorization": f"Bearer {await _login(on_a, loader_email)}"}
        email, user_id = await _register(on_a)
        path = f"/api/{user_id}/tasks"
        stop = asyncio.Event()
        loaders = [
            asyncio.create_task(_load(b, f"/api/{loader_id}/tasks", loader_headers, stop))
            for _ in range(load)
        ]
        # One connection each: keep-alive pins a connection to one of B's workers.
        probe_clients = [httpx.AsyncClient(base_url=b, timeout=30) for _ in range(probes)]
        windows: list[float] = []
        followed = done = 0
        try:
            for _ in range(samples):
                token = await _login(on_a, email)
                headers = {"Authorization": f"Bearer {token}"}
                for http in probe_clients:
                    for _ in range(2):
                        assert (await _send(http, "GET", path, headers=headers)).status_code == 200
                logout = await _send(on_a, "POST", "/api/auth/logout", headers=headers)
                returned = time.perf_counter()
                assert logout.status_code == 204
                results = await asyncio.gather(
                    *(_probe(http, path, headers, returned) for http in probe_clients)
                )
                accepted = [result for result in results if result is not None]
                if accepted:
                    followed += 1
                    windows.append(max(accepted) * 1000)
                done += 1
                if done % 50 == 0:
                    print(f"{done} logouts, {followed} followed by a 200 on B", flush=True)
        finally:
            stop.set()
            await asyncio.gather(*loaders)
            for http in probe_clients:
                await http.aclose()
            _report(done, followed, windows, load, probes)


def _report(done: int, followed: int, windows: list[float], load: int, probes: int) -> None:
    print(f"{done} logouts on A, B busy with {load} clients, {probes} probe connections to B")
    print(
        f"followed by a 200 on B for a request sent after the 204: {followed} ({followed / max(done, 1):.1%})"
    )
    if windows:
        windows.sort()
        print(
            f"window after the 204 (ms): median {statistics.median(windows):.1f}, "
            f"max {windows[-1]:.1f}, all: {', '.join(f'{w:.1f}' for w in windows)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--load", type=int, default=32)
    parser.add_argument("--probes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logout-bench-") as workdir:
        server = EmbeddedPostgres(Path(workdir) / "db")
        url = server.start()
        processes: list[subprocess.Popen[bytes]] = []
        try:
            migrations.apply_pending(url)
            process_a, a = _serve(url, Path(workdir) / "a")
            processes.append(process_a)
            process_b, b = _serve(url, Path(workdir) / "b", "--workers", "2")
            processes.append(process_b)
            asyncio.run(measure(a, b, args.samples, args.load, args.probes))
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
            server.stop()


if __name__ == "__main__":
    main()
