"""The scenarios of bench/run.py: seeding through the API, wrk scripts, and each group of runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import httpx
import jwt

from bench.processes import (
    USERS,
    WRK_THREADS,
    floor_command,
    free_port,
    machine_busy_seconds,
    rss_mb,
    run_wrk,
    service_command,
    started,
    worker_pids,
)
from bench.report import STATEMENTS, Result

PASSWORD = "bench-password-9f3c1a"
SCANS = 10_000
TASKS = 20
THINK_MS = 500


def get_script(token: str, path: str) -> str:
    return f'wrk.method = "GET"\nwrk.path = "{path}"\nwrk.headers["Authorization"] = "Bearer {token}"\n'


def think_time_script(*, staggered: bool) -> str:
    """wrk's `delay()` for the 1000-users scenarios: every user waits THINK_MS between requests.

    wrk also calls `delay()` before each connection's first request. With a constant there, all
    1000 users send their first request in the same millisecond and, with the same think time,
    stay in step: the server sees a burst of 1000 requests every 500 ms, and p99 is the time to
    drain the burst (1000 / capacity: 180 ms even for the floor). `staggered` spreads the first
    requests uniformly over one think time, as independent users arrive; after that each user
    waits exactly THINK_MS. The first `connections / threads` calls in a wrk thread are its
    connections' first requests.
    """
    if not staggered:
        return f"delay = function() return {THINK_MS} end\n"
    return f"""
local threads = 0
setup = function(thread) threads = threads + 1; thread:set("id", threads) end
init = function(args) math.randomseed(id * 7919) end
local calls = 0
delay = function()
  calls = calls + 1
  if calls <= {USERS // WRK_THREADS} then return math.random(0, {THINK_MS - 1}) end
  return {THINK_MS}
end
"""


def post_json_script(token: str, path: str, body: str) -> str:
    return (
        f'wrk.method = "POST"\nwrk.path = "{path}"\nwrk.body = {json.dumps(body)}\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\nwrk.headers["Content-Type"] = "application/json"\n'
    )


SCAN_BOUNDARY = "bench-scan-boundary"


def scan_submit_script(token: str) -> str:
    """A risk scan of a short text, as a browser's multipart form sends it."""
    body = (
        f'--{SCAN_BOUNDARY}\r\nContent-Disposition: form-data; name="text"\r\n\r\n'
        f"Scan: tight budget and an aggressive deadline.\r\n--{SCAN_BOUNDARY}--\r\n"
    )
    return (
        f'wrk.method = "POST"\nwrk.path = "/api/scan"\nwrk.body = {json.dumps(body)}\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        f'wrk.headers["Content-Type"] = "multipart/form-data; boundary={SCAN_BOUNDARY}"\n'
    )


def login_script(email: str) -> str:
    body = f"username={email}&password={PASSWORD}"
    return (
        f'wrk.method = "POST"\nwrk.path = "/api/auth/login"\nwrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    )


class Seeded:
    def __init__(self) -> None:
        self.tasks_user_id = ""
        self.tasks_token = ""
        # Creates go to a user of their own, so the list being measured keeps its 20 rows.
        self.writer_user_id = ""
        self.writer_token = ""
        self.tasks_email = ""
        self.scans_token = ""
        self.deep_cursor = ""


async def _register_and_login(http: httpx.AsyncClient, email: str) -> tuple[str, str]:
    created = await http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    created.raise_for_status()
    login = await http.post("/api/auth/login", data={"username": email, "password": PASSWORD})
    login.raise_for_status()
    return created.json()["id"], login.json()["access_token"]


async def seed(base: str, scans: int) -> Seeded:
    seeded = Seeded()
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        seeded.tasks_email = "tasks@bench.example"
        seeded.tasks_user_id, seeded.tasks_token = await _register_and_login(http, seeded.tasks_email)
        seeded.writer_user_id, seeded.writer_token = await _register_and_login(http, "writer@bench.example")
        auth = {"Authorization": f"Bearer {seeded.tasks_token}"}
        for number in range(TASKS):
            response = await http.post(
                f"/api/{seeded.tasks_user_id}/tasks",
                json={"title": f"Task {number}", "description": "seeded by bench/run.py"},
                headers=auth,
            )
            response.raise_for_status()
        _, seeded.scans_token = await _register_and_login(http, "scans@bench.example")
        if not scans:
            return seeded
        scan_auth = {"Authorization": f"Bearer {seeded.scans_token}"}
        semaphore = asyncio.Semaphore(16)

        async def one_scan(number: int) -> None:
            async with semaphore:
                response = await http.post(
                    "/api/scan",
                    files={"text": (None, f"Scan {number}: tight budget and an aggressive deadline.")},
                    headers=scan_auth,
                )
                response.raise_for_status()

        await asyncio.gather(*(one_scan(n) for n in range(scans)))
        cursor = None
        for _ in range(scans // 100 - 1):
            params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
            page = await http.get("/api/scans", params=params, headers=scan_auth)
            page.raise_for_status()
            cursor = page.json()["next_cursor"]
        assert cursor, "the deep page exists"
        seeded.deep_cursor = cursor
    return seeded


def argon2_alone(settings_env: dict[str, str], seconds: float = 5.0) -> tuple[float, float]:
    """Password verifications per second with argon2 alone, one thread per core, no server, in a
    fresh interpreter. Not in this process: after a full run's earlier scenarios, its allocator
    handed argon2 fresh pages for every hash (about 1,900 page faults and 4 ms of system CPU per
    verification, against 50 and none in a fresh process), which made argon2 alone about 18 %
    slower and a login look faster than argon2 alone (bench/README.md, "One WAL flush per login").
    (verifications per second, CPU seconds per verification)."""
    output = subprocess.run(
        [sys.executable, "-c", f"from bench.scenarios import _argon2_here; _argon2_here({seconds!r})"],
        env={**settings_env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout.splitlines()
    print(output[0])
    return float(output[1]), float(output[2])


def _argon2_here(seconds: float) -> None:
    """argon2_alone's measurement, in this process: prints what it saw, then the rate."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(
        memory_cost=int(os.environ.get("ARGON2_MEMORY_KIB", "19456")),
        time_cost=int(os.environ.get("ARGON2_TIME_COST", "2")),
        parallelism=int(os.environ.get("ARGON2_PARALLELISM", "1")),
    )
    digest = hasher.hash(PASSWORD)
    counts = [0] * (os.cpu_count() or 1)
    deadline = time.monotonic() + seconds

    def loop(index: int) -> None:
        while time.monotonic() < deadline:
            hasher.verify(digest, PASSWORD)
            counts[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(counts))]
    machine, own = machine_busy_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - own.ru_utime, after.ru_stime - own.ru_stime
    others = machine_busy_seconds() - machine - user - system
    done = max(1, sum(counts))
    print(
        f"  argon2 alone: {user / done * 1e3:.1f} + {system / done * 1e3:.1f} ms CPU (user + system) "
        f"and {(after.ru_minflt - own.ru_minflt) / done:.0f} page faults per verification, "
        f"{(user + system) / seconds:.2f} cores busy with it, {others / seconds:.2f} elsewhere"
    )
    print(sum(counts) / seconds)
    print((user + system) / done)


def measure(
    results: list[Result],
    wrk: str,
    base: str,
    name: str,
    script: str,
    *,
    workers: int,
    connections: int,
    duration: int,
    note: str = "",
    server: int | None = None,
) -> dict[str, float]:
    """Run one scenario, record its result and print its line. `server`: the root pid of the
    server's process tree, for the CPU per request."""
    figures = run_wrk(wrk, base, script, connections=connections, duration=duration, server=server)
    results.append(result_of(name, workers, connections, figures, note))
    print(
        f"  {name:<28} w={workers} c={connections:<4} {figures['rps']:>9.1f} req/s "
        f"p50 {figures['p50_ms']:.2f} ms p99 {figures['p99_ms']:.2f} ms errors {figures['failed']}"
        f" cpu {figures.get('cpu_us', 0):.0f} us/req pg {figures.get('pg_us', 0):.0f} us/req"
    )
    return figures


def result_of(name: str, workers: int, connections: int, figures: dict[str, float], note: str = "") -> Result:
    return Result(
        scenario=name,
        workers=workers,
        connections=connections,
        rps=round(figures["rps"], 1),
        p50_ms=round(figures["p50_ms"], 2),
        p95_ms=round(figures["p95_ms"], 2),
        p99_ms=round(figures["p99_ms"], 2),
        max_ms=round(figures["max_ms"], 2),
        requests=int(figures["requests"]),
        errors=int(figures["failed"]),
        cpu_us_per_req=round(figures.get("cpu_us", 0), 1),
        pg_us_per_req=round(figures.get("pg_us", 0), 1),
        note=note,
    )


def bench_workers(
    args: argparse.Namespace, wrk: str, env: dict[str, str], workers: int, results: list[Result]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with started(service_command(port, workers), env, f"{base}/health/ready") as server:
        # The scans take minutes to seed through the AI service: only for a run that reads them.
        wants_scans = not args.only or any(name.startswith("scans") for name in args.only)
        seeded = seed_once(base, env, SCANS if wants_scans else 0)
        duration = args.duration
        tasks_path = f"/api/{seeded.tasks_user_id}/tasks"

        def scenario(name: str, script: str, connections: int = 64, note: str = "") -> dict[str, float]:
            if args.only and name not in args.only:
                return {}
            return measure(
                results,
                wrk,
                base,
                name,
                script,
                workers=workers,
                connections=connections,
                duration=duration,
                note=note,
                server=server.pid,
            )

        scenario("health", 'wrk.path = "/health"\n')
        scenario("tasks_list", get_script(seeded.tasks_token, tasks_path))
        scenario(
            "tasks_create",
            post_json_script(
                seeded.writer_token,
                f"/api/{seeded.writer_user_id}/tasks",
                '{"title":"bench","description":"wrk"}',
            ),
        )
        scenario(
            "scan_submit",
            scan_submit_script(seeded.scans_token),
            # SCAN_MAX_CONCURRENT_UPLOADS (8) per worker: a ninth upload in flight is a 503 by design.
            connections=8,
            note="POST /api/scan (multipart text) to the demo AI service",
        )
        scenario("scans_first_page", get_script(seeded.scans_token, "/api/scans?limit=20"))
        scenario(
            "scans_deep_page",
            get_script(seeded.scans_token, f"/api/scans?limit=20&cursor={seeded.deep_cursor}"),
            note="cursor after 9,900 scans",
        )
        scenario(
            "users_1000",
            get_script(seeded.tasks_token, tasks_path) + think_time_script(staggered=True),
            connections=USERS,
            note="1000 connections, 500 ms think time each, first requests spread over 500 ms",
        )
        scenario(
            "users_1000_lockstep",
            get_script(seeded.tasks_token, tasks_path) + think_time_script(staggered=False),
            connections=USERS,
            note="as users_1000, but all 1000 start in the same millisecond and stay in step",
        )
        quiet = scenario("tasks_list_quiet", get_script(seeded.tasks_token, tasks_path), connections=16)
        scenario(
            "login", login_script(seeded.tasks_email), connections=16, note="argon2id verify per request"
        )
        if not args.only or "login_storm" in args.only:
            storm: dict[str, dict[str, float]] = {}

            def login_storm() -> None:
                storm["login"] = run_wrk(
                    wrk, base, login_script(seeded.tasks_email), connections=16, duration=duration
                )

            thread = threading.Thread(target=login_storm)
            thread.start()
            time.sleep(0.5)
            during = run_wrk(
                wrk, base, get_script(seeded.tasks_token, tasks_path), connections=16, duration=duration - 1
            )
            thread.join()
            results.append(
                result_of("login_during_storm", workers, 16, storm["login"], "with the task list below")
            )
            results.append(
                result_of(
                    "tasks_list_during_login_storm", workers, 16, during, "16 login connections in parallel"
                )
            )
            if quiet:
                results[-1].extra["p99_vs_quiet"] = round(during["p99_ms"] / quiet["p99_ms"], 2)
            print(
                f"  login storm                  w={workers} {storm['login']['rps']:.1f} logins/s; "
                f"task list p99 during it {during['p99_ms']:.2f} ms"
            )
        rss = [rss_mb(pid) for pid in worker_pids(server.pid)]
        results.append(
            Result(
                scenario="rss_per_worker_mb",
                workers=workers,
                note="VmRSS of each serving process after the run",
                extra={"max": round(max(rss), 1), "processes": len(rss)},
            )
        )


_SEEDED: dict[str, Seeded] = {}


def seed_once(base: str, env: dict[str, str], scans: int) -> Seeded:
    """Seed once per database; later runs reuse the users (tokens stay valid across restarts)."""
    if "done" not in _SEEDED:
        started_at = time.monotonic()
        _SEEDED["done"] = asyncio.run(seed(base, scans))
        print(
            f"  seeded {TASKS} tasks and {scans} scans through the API in {time.monotonic() - started_at:.0f} s"
        )
    return _SEEDED["done"]


STATEMENT_REQUESTS = 2000
# PostgreSQL publishes a backend's counters when it goes idle, or up to 10 s later.
STATS_FLUSH_SECONDS = 11
BETTER_AUTH_SECRET = "bench-better-auth-" + "b" * 32
SUPABASE_JWT_SECRET = "bench-supabase-" + "s" * 32


def external_tokens(subject: str) -> dict[str, str]:
    """A Better Auth token (shared secret, no issuer: TaskFlow) and a Supabase one (legacy secret)."""
    now = int(time.time())
    lifetime = {"sub": subject, "iat": now, "exp": now + 3600}
    return {
        "better_auth": jwt.encode(lifetime, BETTER_AUTH_SECRET, "HS256"),
        "supabase": jwt.encode(
            {
                **lifetime,
                "iss": "https://bench-project.supabase.co/auth/v1",
                "aud": "authenticated",
                "role": "authenticated",
            },
            SUPABASE_JWT_SECRET,
            "HS256",
        ),
    }


async def _commits(connection: asyncpg.Connection) -> int:
    from service.db.sql import load_sql

    count: int = await connection.fetchval(load_sql("bench/count_commits"))
    return count


async def _count_statements(
    base: str, database_url: str, tokens: dict[str, tuple[str, str]]
) -> dict[str, float]:
    """Database statements (committed transactions) per authenticated task list, once warm, for
    each token: (commits over STATEMENT_REQUESTS requests - the idle rate over the same time) / N."""
    connection = await asyncpg.connect(database_url)
    figures: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def requests(token: str, path: str, count: int) -> None:
                semaphore = asyncio.Semaphore(16)

                async def one() -> None:
                    async with semaphore:
                        response = await http.get(path, headers={"Authorization": f"Bearer {token}"})
                        response.raise_for_status()

                await asyncio.gather(*(one() for _ in range(count)))

            await asyncio.sleep(STATS_FLUSH_SECONDS)
            idle_started, idle_from = time.monotonic(), await _commits(connection)
            await asyncio.sleep(2 * STATS_FLUSH_SECONDS)
            idle_rate = (await _commits(connection) - idle_from - 1) / (time.monotonic() - idle_started)
            for kind, (token, path) in tokens.items():
                await requests(token, path, 50)  # warm: identity provisioned, caller cached
                await asyncio.sleep(STATS_FLUSH_SECONDS)
                started, before = time.monotonic(), await _commits(connection)
                await requests(token, path, STATEMENT_REQUESTS)
                await asyncio.sleep(STATS_FLUSH_SECONDS)
                spent = await _commits(connection) - before - 1 - idle_rate * (time.monotonic() - started)
                figures[kind] = round(spent / STATEMENT_REQUESTS, 2)
    finally:
        await connection.close()
    return figures


def bench_statements(args: argparse.Namespace, env: dict[str, str], results: list[Result]) -> None:
    """Statements per task list for our token, a Better Auth and a Supabase token, with the
    caller cache on (the default) and off (CALLER_CACHE_SIZE=0), one worker each."""
    if args.only and STATEMENTS not in args.only:
        return
    seeded = _SEEDED["done"]
    external = external_tokens(f"bench-subject-{os.getpid()}")
    tokens = {
        "local": (seeded.tasks_token, f"/api/{seeded.tasks_user_id}/tasks"),
        **{kind: (token, f"/api/bench-subject-{os.getpid()}/tasks") for kind, token in external.items()},
    }
    for cache, extra_env in (("on", {}), ("off", {"CALLER_CACHE_SIZE": "0"})):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with started(service_command(port, 1), {**env, **extra_env}, f"{base}/health/ready"):
            figures = asyncio.run(_count_statements(base, env["DATABASE_URL"], tokens))
        results.append(
            Result(
                scenario=f"{STATEMENTS}_cache_{cache}",
                workers=1,
                connections=16,
                requests=STATEMENT_REQUESTS,
                note=f"committed transactions per task list, caller cache {cache}",
                extra=figures,
            )
        )
        print(
            f"  {STATEMENTS} (caller cache {cache}): " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items())
        )


INTERLEAVED = "tasks_list_interleaved"
TRACING = "tasks_list_tracing"


def interleave(
    args: argparse.Namespace, wrk: str, script: str, bases: dict[str, str], label: str
) -> list[dict[str, float]]:
    """The task list on every server of `bases`, in turn, for `--rounds` rounds with the order
    rotating; each round's req/s by server name."""
    for base in bases.values():  # warm up: every pool connection opened, statements prepared
        run_wrk(wrk, base, script, connections=64, duration=2)
    rounds: list[dict[str, float]] = []
    names = list(bases)
    for number in range(args.rounds):
        measured = {}
        first = number % len(names)
        for name in names[first:] + names[:first]:
            measured[name] = run_wrk(wrk, bases[name], script, connections=64, duration=args.duration)["rps"]
        rounds.append(measured)
        print(
            f"  {label} round {number + 1}: " + ", ".join(f"{n} {measured[n]:.1f}" for n in names) + " req/s"
        )
    return rounds


def median_result(
    scenario: str, rounds: list[dict[str, float]], name: str, baseline: str, key: str, beside: str
) -> Result:
    """`name`'s median req/s over the rounds, and its ratio to `baseline` (median and range)."""
    ratios = [r[name] / r[baseline] for r in rounds]
    return Result(
        scenario=scenario,
        workers=1,
        connections=64,
        rps=round(statistics.median(r[name] for r in rounds), 1),
        note=f"median of {len(rounds)} rounds, each beside {beside}",
        extra={
            f"{key}_median": round(statistics.median(ratios), 2),
            f"{key}_min": round(min(ratios), 2),
            f"{key}_max": round(max(ratios), 2),
        },
    )


# Tracing off, and on with these sampling ratios, exporting over OTLP/HTTP to a receiver in
# this process that reads each batch and answers 200 (a collector's work, not counted).
TRACING_SAMPLED = {"traced_100": "1.0", "traced_10": "0.1"}


def bench_tracing(args: argparse.Namespace, wrk: str, env: dict[str, str], results: list[Result]) -> None:
    """The task list with tracing off and on (100 % and 10 % sampled), one worker each, all
    running at once and driven in turn like the interleaved floors."""
    if args.only and TRACING not in args.only:
        return
    from tests.observability.otlp_receiver import otlp_receiver

    seeded = _SEEDED["done"]
    script = get_script(seeded.tasks_token, f"/api/{seeded.tasks_user_id}/tasks")
    with ExitStack() as stack:
        receiver = stack.enter_context(otlp_receiver(decode=False))
        environments = {"off": env}
        for name, ratio in TRACING_SAMPLED.items():
            environments[name] = {
                **env,
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": ratio,
            }
        bases: dict[str, str] = {}
        for name, environment in environments.items():
            port = free_port()
            bases[name] = f"http://127.0.0.1:{port}"
            stack.enter_context(started(service_command(port, 1), environment, bases[name] + "/health/ready"))
        rounds = interleave(args, wrk, script, bases, TRACING)
        print(f"  the receiver took {receiver.requests} OTLP export requests")
    for name in bases:
        results.append(median_result(f"{TRACING}_{name}", rounds, name, "off", "x_off", "tracing off"))


def _fastapi_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("fastapi", "sqlalchemy"))


INTERLEAVED_SERVERS = {
    "service": "",
    "floor": "bench.floor:app",
    "litestar": "bench.floor_litestar:app",
    "fastapi": "bench.peer_fastapi:app",
}
INTERLEAVED_SCENARIOS = {
    "service": INTERLEAVED,
    "litestar": "floor_litestar_interleaved",
    "fastapi": "peer_fastapi_interleaved",
}


def bench_interleaved(args: argparse.Namespace, wrk: str, env: dict[str, str], results: list[Result]) -> None:
    """The task list on the service (one worker), the floor, the Litestar floor and (when the
    `bench` dependency group is installed) the FastAPI peer, all running at once and driven in
    turn, round after round.

    The machine's speed wanders by tens of percent over minutes (a VM on a shared host), and the
    scenarios above run the service and the floors minutes apart. Here each round measures all
    of them within seconds of each other, the order rotates between rounds, and each ratio is
    reported as its median over the rounds with the lowest and highest.
    """
    if args.only and INTERLEAVED not in args.only:
        return
    seeded = _SEEDED["done"]
    script = get_script(seeded.tasks_token, f"/api/{seeded.tasks_user_id}/tasks")
    servers = {name: target for name, target in INTERLEAVED_SERVERS.items() if name != "fastapi"}
    if _fastapi_installed():
        servers["fastapi"] = INTERLEAVED_SERVERS["fastapi"]
    else:
        print("  (no FastAPI peer: `uv sync --group bench` installs it)")
    with ExitStack() as stack:
        bases: dict[str, str] = {}
        for name, target in servers.items():
            port = free_port()
            bases[name] = f"http://127.0.0.1:{port}"
            if target:
                stack.enter_context(
                    started(floor_command(target, port), env, bases[name] + "/", any_status=True)
                )
            else:
                stack.enter_context(started(service_command(port, 1), env, bases[name] + "/health/ready"))
        rounds = interleave(args, wrk, script, bases, INTERLEAVED)
    for name in bases:
        if name == "floor":
            continue
        result = median_result(INTERLEAVED_SCENARIOS[name], rounds, name, "floor", "x_floor", "the floor")
        if name == "service":
            result.extra["x_litestar_floor_median"] = round(
                statistics.median(r[name] / r["litestar"] for r in rounds), 2
            )
            if "fastapi" in bases:
                result.extra["x_fastapi_median"] = round(
                    statistics.median(r[name] / r["fastapi"] for r in rounds), 2
                )
        results.append(result)


FLOOR_SCENARIOS = (
    "floor_tasks_list",
    "floor_users_1000",
    "floor_users_1000_lockstep",
    "floor_litestar_tasks_list",
)


def bench_floor(
    args: argparse.Namespace, wrk: str, env: dict[str, str], workers: int, results: list[Result]
) -> None:
    """The floors with `workers` workers, so each service figure has a floor with its worker count."""
    wanted = [name for name in FLOOR_SCENARIOS if not args.only or name in args.only]
    if not wanted:
        return
    seeded = _SEEDED["done"]
    path = f"/api/{seeded.tasks_user_id}/tasks"
    runs = {
        "floor_tasks_list": (
            "bench.floor:app",
            get_script(seeded.tasks_token, path),
            64,
            "bare ASGI: same token check, SQL, encoding",
        ),
        "floor_users_1000": (
            "bench.floor:app",
            get_script(seeded.tasks_token, path) + think_time_script(staggered=True),
            USERS,
            "the floor under users_1000",
        ),
        "floor_users_1000_lockstep": (
            "bench.floor:app",
            get_script(seeded.tasks_token, path) + think_time_script(staggered=False),
            USERS,
            "the floor under users_1000_lockstep",
        ),
        "floor_litestar_tasks_list": (
            "bench.floor_litestar:app",
            get_script(seeded.tasks_token, path),
            64,
            "the floor's work as one plain Litestar route, no middleware",
        ),
    }
    for target in dict.fromkeys(runs[name][0] for name in wanted):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with started(floor_command(target, port, workers), env, f"{base}/", any_status=True) as server:
            for name in wanted:
                app, script, connections, note = runs[name]
                if app != target:
                    continue
                measure(
                    results,
                    wrk,
                    base,
                    name,
                    script,
                    workers=workers,
                    connections=connections,
                    duration=args.duration,
                    note=note,
                    server=server.pid,
                )
