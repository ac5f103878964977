"""Server CPU per request on the task list: the service against the bare ASGI floor.

    uv run python bench/cpu_per_request.py                          # floor and this checkout
    uv run python bench/cpu_per_request.py --old /work/main         # ... and another checkout beside it
    uv run python bench/cpu_per_request.py --profile /tmp/prof.txt  # ... then py-spy on the service
    uv run python bench/cpu_per_request.py --litestar-floor         # ... and the Litestar floor

Each server runs one uvicorn worker on loopback against a fresh database on PostgreSQL
(--admin-url; dropped at the end). wrk drives `GET /api/{user_id}/tasks` (64 connections) on each
server in turn, round after round; CPU per request is the server process tree's utime + stime
(/proc/PID/stat fields 14 and 15) over the run divided by wrk's request count, which is steadier
on a shared machine than requests per second. `--old DIR` serves DIR's code with DIR's own
virtualenv (read-only). `--profile FILE` samples the service worker (--profile-servers) with py-spy under the same
load and prints bench/profile_summary.py's summary of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench.floor import check_same_answer
from bench.processes import ROOT, ensure_wrk, floor_command, free_port, run_wrk, started, worker_pids
from bench.profile_summary import main as summarise
from bench.scenarios import BETTER_AUTH_SECRET, get_script, seed

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int) -> float:
    """utime + stime of `root` and its descendants, in seconds."""
    total = 0
    for pid in worker_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15, counted after `(comm)`
    return total / TICKS


async def _database(admin_url: str, name: str, create: bool) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        if create:
            await connection.execute(f'CREATE DATABASE "{name}"')
        else:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--old", default=None, help="another checkout to serve beside this one")
    parser.add_argument(
        "--litestar-floor", action="store_true", help="also the Litestar floor (bench/floor_litestar.py)"
    )
    parser.add_argument(
        "--plain-protocol",
        action="store_true",
        help="also the service under uvicorn's plain httptools protocol (no head limits)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--profile", default=None, help="write py-spy raw stacks to PROFILE.<server>")
    parser.add_argument("--profile-servers", default="service", help="comma list: floor, service, old")
    args = parser.parse_args()
    wrk = ensure_wrk()
    name = f"bench_cpu_{uuid.uuid4().hex[:8]}"
    admin = args.admin_url
    database_url = admin.rsplit("/", 1)[0] + "/" + name
    asyncio.run(_database(admin, name, create=True))
    try:
        from service.db import migrations

        migrations.apply_pending(database_url)
        return _run(args, wrk, database_url)
    finally:
        asyncio.run(_database(admin, name, create=False))


def _run(args: argparse.Namespace, wrk: str, database_url: str) -> int:
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        "JWT_SECRET": "bench-" + "k" * 40,
        "MFA_ENCRYPTION_KEY": "bench-mfa-" + "m" * 40,  # production requires it
        "BETTER_AUTH_SECRET": BETTER_AUTH_SECRET,
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "AUTH_RATE_LIMIT_PER_MINUTE": "100000000",
        "LOGIN_MAX_FAILURES": "1000000",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "LOG_LEVEL": "INFO",
        # Nothing here sends mail or scans: no mail jobs, no AI service.
        "ACCOUNT_MAIL": "off",
        "AI_SERVICE_URL": "http://127.0.0.1:9",
        "PYTHONPATH": str(ROOT),
    }
    servers: dict[str, tuple[list[str], Path, dict[str, str], str]] = {
        "floor": (floor_command("bench.floor:app", 0), ROOT, env, "/"),
        # The floor that sends the service's very answer (bench/floor.py): the target's reference.
        "same": (floor_command("bench.floor:app_same_answer", 0), ROOT, env, "/"),
        "service": (
            [sys.executable, "-m", "service.cli", "serve", "--workers", "1"],
            ROOT,
            env,
            "/health/ready",
        ),
    }
    if args.plain_protocol:
        # The same app under uvicorn's own httptools protocol: what the head limits cost.
        servers["unguarded"] = (
            [
                *floor_command("service.app:create_served_app", 0),
                "--factory",
            ],
            ROOT,
            env,
            "/health/ready",
        )
    if args.litestar_floor:
        servers["litestar"] = (floor_command("bench.floor_litestar:app", 0), ROOT, env, "/")
    if args.old:
        old = Path(args.old).resolve()
        python = old / ".venv" / "bin" / "python"
        servers["old"] = (
            [str(python), "-m", "service.cli", "serve", "--workers", "1"],
            old,
            {**env, "PYTHONPATH": str(old)},
            "/health/ready",
        )
    with ExitStack() as stack:
        bases: dict[str, str] = {}
        pids: dict[str, int] = {}
        for label, (command, cwd, server_env, ready) in servers.items():
            port = free_port()
            command = _with_port(command, port)
            bases[label] = f"http://127.0.0.1:{port}"
            process = stack.enter_context(
                started(command, server_env, bases[label] + ready, any_status=True, cwd=cwd)
            )
            pids[label] = process.pid
        seeded = asyncio.run(seed(bases["service"], 0))
        script = get_script(seeded.tasks_token, f"/api/{seeded.tasks_user_id}/tasks")
        check_same_answer(bases["service"], bases["same"], seeded.tasks_token, seeded.tasks_user_id)
        for base in bases.values():  # warm: caller cache, prepared statements
            run_wrk(wrk, base, script, connections=args.connections, duration=2)
        figures: dict[str, list[tuple[float, float]]] = {label: [] for label in bases}
        for round_number in range(args.rounds):
            order = list(bases)
            if round_number % 2:
                order.reverse()
            for label in order:
                before = cpu_seconds(pids[label])
                result = run_wrk(
                    wrk, bases[label], script, connections=args.connections, duration=args.duration
                )
                spent = cpu_seconds(pids[label]) - before
                if result["failed"]:
                    print(f"  {label}: {result['failed']} failed requests")
                us = spent / result["requests"] * 1e6
                figures[label].append((us, result["rps"]))
                print(f"  round {round_number + 1} {label:<8} {us:7.1f} us/req {result['rps']:9.1f} req/s")
        floor_us = statistics.median(us for us, _ in figures["floor"])
        same_us = statistics.median(us for us, _ in figures["same"])
        print(
            f"{'':10} {'us/req':>8} {'req/s':>9} {'x floor':>8} {'x same':>7}"
            f"  (medians over {args.rounds} rounds; x same: over the same-answer floor)"
        )
        for label, values in figures.items():
            us = statistics.median(u for u, _ in values)
            rps = statistics.median(r for _, r in values)
            print(f"{label:<10} {us:8.1f} {rps:9.1f} {us / floor_us:8.2f} {us / same_us:7.2f}")
        # Each round's ratio of two runs seconds apart: the VM's speed drifts between rounds.
        for label in figures:
            if label == "same":
                continue
            paired = sorted(u / s for (u, _), (s, _) in zip(figures[label], figures["same"], strict=True))
            print(
                f"{label} / same-answer floor, per round: median {statistics.median(paired):.3f}, "
                f"range {paired[0]:.3f}-{paired[-1]:.3f}"
            )
        for label in args.profile_servers.split(",") if args.profile else ():
            print(f"== py-spy: {label}")
            _profile(wrk, bases[label], pids[label], script, args, f"{args.profile}.{label}")
    return 0


def _with_port(command: list[str], port: int) -> list[str]:
    if "--port" in command:
        index = command.index("--port")
        return [*command[: index + 1], str(port), *command[index + 2 :]]
    return [*command, "--port", str(port)]


def _profile(wrk: str, base: str, root: int, script: str, args: argparse.Namespace, output: str) -> None:
    worker = worker_pids(root)[-1]
    spy = subprocess.Popen(
        [
            "py-spy",
            "record",
            "-p",
            str(worker),
            "-r",
            "250",
            "-d",
            str(args.duration),
            "--format",
            "raw",
            "-o",
            output,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    result = run_wrk(wrk, base, script, connections=args.connections, duration=args.duration)
    spy.wait(timeout=args.duration + 30)
    print(f"  {result['requests']} requests while sampled ({result['rps']:.0f} req/s)")
    summarise(output)


if __name__ == "__main__":
    raise SystemExit(main())
