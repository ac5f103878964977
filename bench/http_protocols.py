"""The request-head limits' cost: the service under its guarded httptools protocol, plain httptools
and h11, side by side, in rotating rounds (bench/README.md, "Request head limits").

    uv run python bench/http_protocols.py                 # 3 rounds of 5 s per server and path
    uv run python bench/http_protocols.py --rounds 5 --duration 3

Each server is the same app (`service.app:create_served_app`) on one worker, uvloop, production
settings, against one fresh embedded PostgreSQL; only the HTTP protocol differs. Every server
binds 127.0.0.1, every wrk run is bounded, everything stops at exit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx
from run import PASSWORD, ROOT, ensure_wrk, free_port, get_script, run_wrk, started

UVICORN_FLAGS = [
    "--factory",
    "--loop",
    "uvloop",
    "--no-access-log",
    "--no-proxy-headers",
    "--no-server-header",
]


def commands(port: int) -> dict[str, list[str]]:
    uvicorn = [sys.executable, "-m", "uvicorn", "service.app:create_served_app", "--port", str(port)]
    return {
        "guarded httptools (service serve)": [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--port",
            str(port),
        ],
        "plain httptools": [*uvicorn, *UVICORN_FLAGS, "--http", "httptools"],
        "h11, 32 KiB heads": [
            *uvicorn,
            *UVICORN_FLAGS,
            "--http",
            "h11",
            "--h11-max-incomplete-event-size",
            "32768",
        ],
    }


def task_list_script(base: str) -> str:
    with httpx.Client(base_url=base, timeout=30) as http:
        email = "bench-protocols@example.com"
        http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        token = http.post("/api/auth/login", data={"username": email, "password": PASSWORD}).json()[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        user_id = http.get("/api/auth/me", headers=headers).json()["id"]
        for number in range(20):
            http.post(f"/api/{user_id}/tasks", json={"title": f"task {number}"}, headers=headers)
    return get_script(token, f"/api/{user_id}/tasks")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    wrk = ensure_wrk()

    from service.db import migrations
    from service.db.embedded import EmbeddedPostgres

    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        database = EmbeddedPostgres(data_dir)
        database_url = database.start()
        stack.callback(database.stop)
        migrations.apply_pending(database_url)
        env = {
            **os.environ,
            "ENVIRONMENT": "production",
            "DATABASE_URL": database_url,
            "DATA_DIR": str(data_dir),
            "JWT_SECRET": "bench-" + "k" * 40,
            "MFA_ENCRYPTION_KEY": "bench-mfa-" + "m" * 40,  # production requires it
            "RATE_LIMIT_PER_MINUTE": "100000000",
            "AUTH_RATE_LIMIT_PER_MINUTE": "100000000",
            "SHUTDOWN_DRAIN_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        bases: dict[str, str] = {}
        for name in commands(0):
            port = free_port()
            bases[name] = f"http://127.0.0.1:{port}"
            stack.enter_context(started(commands(port)[name], env, bases[name] + "/health"))
        scripts = {"/health": "", "task list": task_list_script(next(iter(bases.values())))}
        names = list(bases)
        figures: dict[tuple[str, str], list[float]] = {}
        for path, script in scripts.items():
            for base in bases.values():  # warm up
                run_wrk(wrk, base, script, connections=64, duration=1)
            for number in range(args.rounds):
                first = number % len(names)
                for name in names[first:] + names[:first]:
                    url = bases[name] + ("/health" if path == "/health" else "")
                    rps = run_wrk(wrk, url, script, connections=64, duration=args.duration)["rps"]
                    figures.setdefault((path, name), []).append(rps)
                print(
                    f"  {path} round {number + 1}: "
                    + ", ".join(f"{name} {figures[(path, name)][-1]:.0f}" for name in names)
                )
    print(
        f"\nreq/s, 64 connections, one worker, median (min-max) of {args.rounds} rounds of {args.duration} s"
    )
    for (path, name), values in figures.items():
        print(f"{path:10} {name:34} {statistics.median(values):8.0f}  ({min(values):.0f}-{max(values):.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
