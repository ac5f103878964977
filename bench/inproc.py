"""CPU time per task-list request, in process: the service's ASGI app against the floor's
(bench/floor.py, bare ASGI) and the Litestar floor's (bench/floor_litestar.py, the same work as
one plain Litestar route).

No sockets and no wrk: 64 concurrent callers invoke each ASGI app directly on uvloop against
a real (embedded) PostgreSQL, and the process's own CPU time is divided by the requests
served. PostgreSQL's CPU is not counted, so this isolates what our Python code costs per
request; the HTTP server's share (uvicorn + httptools) is the same for both and not included.
Repeatable within a few percent on a busy machine, so it is the quick loop for optimising;
`bench/run.py` remains the measurement of record.

    uv run python bench/inproc.py                  # 30 alternating rounds of 2,000 requests
    uv run python bench/inproc.py --profile        # also cProfile the service (--sort, --top,
                                                   # --profile-app 'litestar floor')
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _scope(path: str, token: str, method: str = "GET") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _call(app: Any, scope: dict[str, Any], body: bytes = b"") -> tuple[int, bytes]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def _drive(app: Any, path: str, token: str, requests: int, concurrency: int) -> tuple[float, float]:
    per_client = requests // concurrency

    async def client() -> None:
        for _ in range(per_client):
            status, _ = await _call(app, _scope(path, token))
            assert status == 200, status

    await asyncio.gather(*(client() for _ in range(8)))  # warm up
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    served = per_client * concurrency
    return (time.process_time() - cpu) / served * 1e6, served / (time.perf_counter() - wall)


async def _lifespan(app: Any) -> Any:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    done: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(app({"type": "lifespan", "state": {}}, queue.get, done.put))
    message = await done.get()
    assert message["type"] == "lifespan.startup.complete", message

    async def stop() -> None:
        await queue.put({"type": "lifespan.shutdown"})
        await done.get()
        await task

    return stop


async def main(args: argparse.Namespace) -> None:
    from service.app import create_app
    from service.settings import load_settings

    settings = load_settings()
    app = create_app(settings)
    stop = await _lifespan(app)
    email = f"inproc-{os.getpid()}@bench.example"
    password = "bench-password-9f3c1a"
    form = f"username={email}&password={password}".encode()
    register = _scope("/api/auth/register", "", "POST")
    register["headers"] = [(b"content-type", b"application/json")]
    status, body = await _call(app, register, f'{{"email":"{email}","password":"{password}"}}'.encode())
    assert status == 201, body
    import msgspec

    user_id = msgspec.json.decode(body)["id"]
    login = _scope("/api/auth/login", "", "POST")
    login["headers"] = [(b"content-type", b"application/x-www-form-urlencoded")]
    status, body = await _call(app, login, form)
    token = msgspec.json.decode(body)["access_token"]
    path = f"/api/{user_id}/tasks"
    for number in range(20):
        create = _scope(path, token, "POST")
        create["headers"].append((b"content-type", b"application/json"))
        status, body = await _call(app, create, f'{{"title":"Task {number}"}}'.encode())
        assert status == 201, body

    from bench import floor, floor_litestar

    stop_floor = await _lifespan(floor.app)
    stop_same = await _lifespan(floor.app_same_answer)
    stop_floor_litestar = await _lifespan(floor_litestar.app)
    # Short alternating rounds; the VM's CPU speed wanders, so the fastest round of each is the
    # figure (the median is printed too).
    runs: dict[str, list[float]] = {"floor": [], "same answer": [], "litestar floor": [], "service": []}
    apps = {
        "floor": floor.app,
        "same answer": floor.app_same_answer,
        "litestar floor": floor_litestar.app,
        "service": app,
    }
    for _ in range(args.rounds):
        for name, each in apps.items():
            runs[name].append((await _drive(each, path, token, args.requests, 64))[0])
    # Each round's service over the same-answer floor of that round: the VM's speed drifts
    # between rounds far more than within one.
    paired = sorted(s / f for s, f in zip(runs["service"], runs["same answer"], strict=True))
    best = {}
    for name, figures in runs.items():
        figures.sort()
        best[name] = figures[0]
    print(
        f"CPU per request over {args.rounds} rounds of {args.requests}: "
        + ", ".join(
            f"{name} {best[name]:.1f} µs (median {runs[name][len(runs[name]) // 2]:.1f})" for name in runs
        )
        + f"; service costs {best['service'] - best['floor']:.1f} µs more than the floor, "
        f"{best['service'] - best['same answer']:.1f} more than the same-answer floor "
        f"(x {best['service'] / best['same answer']:.3f} its CPU) "
        f"({best['service'] - best['litestar floor']:.1f} more than the Litestar floor); "
        f"floor/service {best['floor'] / best['service']:.2f}, "
        f"floor/litestar floor {best['floor'] / best['litestar floor']:.2f}; "
        f"service/same answer per round: median {paired[len(paired) // 2]:.3f} "
        f"(quartiles {paired[len(paired) // 4]:.3f}-{paired[3 * len(paired) // 4]:.3f})"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await _drive(apps[args.profile_app], path, token, args.requests, 64)
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats(args.sort).print_stats(args.top)
    await stop_floor_litestar()
    await stop_same()
    await stop_floor()
    await stop()


def on_embedded_database(run: Coroutine[Any, Any, None], prefix: str, **environment: str) -> None:
    """Run `run` on uvloop against a fresh, migrated embedded PostgreSQL, with the service's
    production settings for a benchmark in the environment (and `environment` on top)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
        from service.db import migrations
        from service.db.embedded import EmbeddedPostgres

        database = EmbeddedPostgres(Path(data_dir))
        url = database.start()
        try:
            migrations.apply_pending(url)
            os.environ.update(
                ENVIRONMENT="production",
                DATABASE_URL=url,
                DATA_DIR=data_dir,
                JWT_SECRET="bench-" + "k" * 40,
                MFA_ENCRYPTION_KEY="bench-mfa-" + "m" * 40,  # production requires it
                RATE_LIMIT_PER_MINUTE="100000000",
                AUTH_RATE_LIMIT_PER_MINUTE="100000000",
                LOG_LEVEL="INFO",
                AI_SERVICE_URL="http://127.0.0.1:9",
                ACCOUNT_MAIL="off",  # production requires SMTP_URL otherwise; nothing here sends mail
                **environment,
            )
            uvloop.run(run)
        finally:
            run.close()  # never started when the database did not (no "never awaited" warning)
            database.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--profile-app", default="service", choices=["service", "litestar floor", "floor", "same answer"]
    )
    parser.add_argument("--sort", default="tottime", help="pstats sort key: tottime, cumulative")
    parser.add_argument("--top", type=int, default=35)
    arguments = parser.parse_args()
    on_embedded_database(main(arguments), "inproc-")
