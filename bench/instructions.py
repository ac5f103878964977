"""Instructions per task-list request under callgrind: the service against the floors.

CPU time per request on this VM moves by about +-10 % between runs seconds apart, which is as
large as the difference the CPU target is about (bench/README.md). Instruction counts do not
move with the machine's speed: this runs each server under `valgrind --tool=callgrind` with
instrumentation off, warms it, switches instrumentation on (`callgrind_control`), sends exactly
`--requests` task lists from `--concurrency` connections, switches it off and reads the total
instructions (Ir) of every thread of the server process, and of its event loop thread alone.
Instructions are not time (a cache miss costs more than an add), so this complements the
CPU-time figures rather than replacing them.

The other threads are the trace export thread (and the argon2 pool, idle here). Under callgrind
a server runs about 40 times slower (about 100 task lists a second), so work the export thread
does per second rather than per span (the failed sends to the closed port, each with its retries
and warnings) is spread over 40 times fewer requests than in real time: the event loop's column
is the one that scales with requests.

    uv run python bench/instructions.py                       # same-answer floor, minimal floor, service
    uv run python bench/instructions.py --traced              # ... and the service traced with nothing
                                                              # sampled, at 10 % and at 100 %
    uv run python bench/instructions.py --traced --cache-sim  # ... and the event loop's misses in
                                                              # callgrind's simulated caches

One server at a time, one uvicorn worker, on a fresh database on the machine's PostgreSQL
(--admin-url; dropped at the end); PostgreSQL's own work is not counted. Needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.cpu_per_request import _database
from bench.floor import check_same_answer
from bench.processes import ROOT, floor_command, free_port, started
from bench.scenarios import BETTER_AUTH_SECRET, seed


@contextmanager
def under_callgrind(
    command: list[str], env: dict[str, str], ready: str, out: Path, cache_sim: bool = False
) -> Iterator[int]:
    """`command` under callgrind with instrumentation off; yields its pid once `ready` answers."""
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--separate-threads=yes",  # a dump per thread: the event loop's is thread 1
        f"--callgrind-out-file={out}",
        *(["--cache-sim=yes"] if cache_sim else []),
    ]
    with started([*valgrind, *command], env, ready, any_status=True, ready_timeout=600) as process:
        yield process.pid


async def _drive(base: str, path: str, token: str, requests: int, concurrency: int) -> int:
    """Exactly `requests` GETs of `path` over `concurrency` connections; the number of 200s."""
    remaining = requests
    ok = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def worker() -> None:
            nonlocal remaining, ok
            while remaining > 0:
                remaining -= 1
                answer = await client.get(
                    path, headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
                )
                ok += answer.status_code == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def _control(pid: int, *flags: str) -> None:
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True, timeout=120)


def _totals(out: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The event counts (Ir, and with --cache-sim the simulated cache's reads, writes and misses)
    of the dumps callgrind wrote for this process: all threads, and the first thread (the event
    loop) alone."""
    total: dict[str, int] = {}
    loop: dict[str, int] = {}
    for dump in out.parent.glob(out.name + "*"):
        text = dump.read_text(errors="replace")
        events = re.search(r"^events: (.+)$", text, re.MULTILINE)
        counts = re.search(r"^totals: (.+)$", text, re.MULTILINE)
        if not events or not counts:
            continue
        for event, count in zip(events.group(1).split(), counts.group(1).split(), strict=False):
            total[event] = total.get(event, 0) + int(count)
            if dump.name.endswith("-01"):
                loop[event] = loop.get(event, 0) + int(count)
    return total, loop


def measure(
    label: str,
    command: list[str],
    env: dict[str, str],
    ready: str,
    base_port: int,
    path: str,
    token: str,
    args: argparse.Namespace,
    work: Path,
) -> tuple[float, float]:
    out = work / (re.sub(r"[^a-z0-9]+", "_", label) + ".callgrind")  # valgrind expands % in the name
    base = f"http://127.0.0.1:{base_port}"
    with under_callgrind(command, env, base + ready, out, cache_sim=args.cache_sim) as pid:
        asyncio.run(_drive(base, path, token, args.warm, args.concurrency))  # caches, statements
        _control(pid, "--zero")
        _control(pid, "--instr=on")
        started_at = time.monotonic()
        ok = asyncio.run(_drive(base, path, token, args.requests, args.concurrency))
        _control(pid, "--instr=off")
        _control(pid, "--dump")
        elapsed = time.monotonic() - started_at
    if ok != args.requests:
        raise SystemExit(f"{label}: only {ok} of {args.requests} answers were 200")
    total, loop = _totals(out)
    per_request, loop_per_request = total.get("Ir", 0) / args.requests, loop.get("Ir", 0) / args.requests
    print(
        f"  {label:<12} {per_request:12,.0f} instructions/request, {loop_per_request:,.0f} on the event "
        f"loop ({elapsed:.0f} s under callgrind)"
    )
    if "I1mr" in loop:
        # callgrind leaves trailing zero counts off its totals line: a missing event counted 0.
        misses = {
            "first-level instruction": loop["I1mr"],
            "first-level data": loop.get("D1mr", 0) + loop.get("D1mw", 0),
            "last-level": loop.get("ILmr", 0) + loop.get("DLmr", 0) + loop.get("DLmw", 0),
        }
        print(
            f"  {'':<12} event loop, simulated cache misses per request: "
            + ", ".join(f"{name} {count / args.requests:,.0f}" for name, count in misses.items())
        )
    return per_request, loop_per_request


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--traced",
        action="store_true",
        help="also the service traced at each of --ratios (0: nothing sampled)",
    )
    parser.add_argument("--ratios", default="0,0.1,1.0", help="the sampling ratios of --traced")
    parser.add_argument(
        "--cache-sim",
        action="store_true",
        help="also callgrind's cache simulation: the event loop's simulated cache misses per request "
        "(this process alone: PostgreSQL, wrk and the other core do not evict anything there)",
    )
    parser.add_argument(
        "--keep", default=None, help="keep callgrind's dumps in this folder (callgrind_annotate)"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    name = f"bench_ir_{uuid.uuid4().hex[:8]}"
    database_url = args.admin_url.rsplit("/", 1)[0] + "/" + name
    asyncio.run(_database(args.admin_url, name, create=True))
    try:
        from service.db import migrations

        migrations.apply_pending(database_url)
        return _run(args, database_url)
    finally:
        asyncio.run(_database(args.admin_url, name, create=False))


def _run(args: argparse.Namespace, database_url: str) -> int:
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        "JWT_SECRET": "bench-" + "k" * 40,
        "MFA_ENCRYPTION_KEY": "bench-mfa-" + "m" * 40,
        "BETTER_AUTH_SECRET": BETTER_AUTH_SECRET,
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "AUTH_RATE_LIMIT_PER_MINUTE": "100000000",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "LOG_LEVEL": "INFO",
        "ACCOUNT_MAIL": "off",
        "AI_SERVICE_URL": "http://127.0.0.1:9",
        "PYTHONPATH": str(ROOT),
        # One string hash seed for every server: a dict's probe sequences depend on it, so with
        # a random seed per process the same code's count moved by about 5,000 instructions per
        # request between runs (asyncpg's module-global lookups alone: 117 to 181 instructions).
        "PYTHONHASHSEED": "0",
    }
    closed = f"http://127.0.0.1:{free_port()}"  # tracing exports to a port nobody listens on

    def traced(ratio: str) -> dict[str, str]:
        return {
            **env,
            "OTEL_EXPORTER_OTLP_ENDPOINT": closed,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": ratio,
        }

    def service(port: int) -> list[str]:
        return [sys.executable, "-m", "service.cli", "serve", "--workers", "1", "--port", str(port)]

    # Seed through a normal (unmeasured) service and check that the floor answers the same.
    port, floor_port = free_port(), free_port()
    with (
        started(service(port), env, f"http://127.0.0.1:{port}/health/ready", any_status=True),
        started(
            floor_command("bench.floor:app_same_answer", floor_port),
            env,
            f"http://127.0.0.1:{floor_port}/",
            any_status=True,
        ),
    ):
        seeded = asyncio.run(seed(f"http://127.0.0.1:{port}", 0))
        check_same_answer(
            f"http://127.0.0.1:{port}",
            f"http://127.0.0.1:{floor_port}",
            seeded.tasks_token,
            seeded.tasks_user_id,
        )
    path = f"/api/{seeded.tasks_user_id}/tasks"
    servers: list[tuple[str, list[str], dict[str, str], str]] = []
    for label, target in (("same answer", "bench.floor:app_same_answer"), ("minimal", "bench.floor:app")):
        port = free_port()
        servers.append((label, floor_command(target, port), env, "/"))
    port = free_port()
    servers.append(("service", service(port), env, "/health/ready"))
    if args.traced:
        for ratio in args.ratios.split(","):
            port = free_port()
            servers.append((f"traced {float(ratio):.0%}", service(port), traced(ratio), "/health/ready"))
    figures: dict[str, float] = {}
    loops: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ir-") as temporary:
        work = args.keep or temporary
        Path(work).mkdir(parents=True, exist_ok=True)
        for label, command, server_env, ready in servers:
            port = int(command[command.index("--port") + 1])
            figures[label], loops[label] = measure(
                label, command, server_env, ready, port, path, seeded.tasks_token, args, Path(work)
            )
    same = figures["same answer"]
    print(f"{'':14} {'instructions/req':>16} {'x same answer':>14} {'x minimal':>10}")
    for label, value in figures.items():
        print(f"{label:<14} {value:16,.0f} {value / same:14.3f} {value / figures['minimal']:10.3f}")
    for label, value in figures.items():
        if label.startswith("traced"):
            print(
                f"{label} over the untraced service: {value / figures['service']:.3f}, "
                f"the event loop's {loops[label] / loops['service']:.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
