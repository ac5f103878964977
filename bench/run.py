"""The benchmark: a fresh database, the service on loopback, wrk for a bounded time per scenario.

    uv run python bench/run.py                  # every scenario, 1 and 2 workers, ~8 minutes
    uv run python bench/run.py --duration 5 --workers 1 --only tasks_list,floor_tasks_list

Prints a table and writes bench/results/<timestamp>.json (and latest.json). Installs wrk with
apt-get when it is missing and we are root. Every server binds 127.0.0.1 and is stopped at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg
import httpx
import jwt

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REPORT_LUA = (ROOT / "bench" / "report.lua").read_text()
PASSWORD = "bench-password-9f3c1a"
SCANS = 10_000
TASKS = 20
USERS = 1000
THINK_MS = 500
WRK_THREADS = 2
SETTLE_SECONDS = 3


@dataclass
class Result:
    scenario: str
    workers: int
    connections: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


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
    command: list[str], env: dict[str, str], ready_url: str, any_status: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
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


def argon2_alone(settings_env: dict[str, str], seconds: float = 5.0) -> float:
    """Password verifications per second with argon2 alone, one thread per core, no server."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(
        memory_cost=int(settings_env.get("ARGON2_MEMORY_KIB", "19456")),
        time_cost=int(settings_env.get("ARGON2_TIME_COST", "2")),
        parallelism=int(settings_env.get("ARGON2_PARALLELISM", "1")),
    )
    digest = hasher.hash(PASSWORD)
    counts = [0] * (os.cpu_count() or 1)
    deadline = time.monotonic() + seconds

    def loop(index: int) -> None:
        while time.monotonic() < deadline:
            hasher.verify(digest, PASSWORD)
            counts[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(counts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


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
) -> dict[str, float]:
    """Run one scenario, record its result and print its line."""
    figures = run_wrk(wrk, base, script, connections=connections, duration=duration)
    results.append(result_of(name, workers, connections, figures, note))
    print(
        f"  {name:<28} w={workers} c={connections:<4} {figures['rps']:>9.1f} req/s "
        f"p50 {figures['p50_ms']:.2f} ms p99 {figures['p99_ms']:.2f} ms errors {figures['failed']}"
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
                "rss_per_worker_mb",
                workers,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
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


def floor_command(target: str, port: int) -> list[str]:
    """A floor app under the service's uvicorn settings (service/cli.py), one worker."""
    return [
        *(sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)),
        *("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"),
        *("--no-proxy-headers", "--no-server-header"),
    ]


def service_command(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", str(workers)]


STATEMENTS = "statements_per_request"
STATEMENT_REQUESTS = 2000
# PostgreSQL publishes a backend's counters when it goes idle, or up to 10 s later.
STATS_FLUSH_SECONDS = 11
BETTER_AUTH_SECRET = "bench-better-auth-" + "b" * 32
SUPABASE_JWT_SECRET = "bench-supabase-" + "s" * 32


def external_tokens(subject: str) -> dict[str, str]:
    """A Better Auth token (shared secret, no issuer: seed 002) and a Supabase one (legacy secret)."""
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
    from service.db.pool import load_sql

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
                f"{STATEMENTS}_cache_{cache}",
                1,
                16,
                0,
                0,
                0,
                0,
                0,
                STATEMENT_REQUESTS,
                0,
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
        scenario,
        1,
        64,
        round(statistics.median(r[name] for r in rounds), 1),
        0,
        0,
        0,
        0,
        0,
        0,
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


def bench_floor(args: argparse.Namespace, wrk: str, env: dict[str, str], results: list[Result]) -> None:
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
        with started(floor_command(target, port), env, f"{base}/", any_status=True):
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
                    workers=1,
                    connections=connections,
                    duration=args.duration,
                    note=note,
                )


def table(results: list[Result], floor_rps: float | None, argon2_rps: float) -> str:
    lines = [
        f"{'scenario':<30} {'w':>2} {'conn':>5} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6} {'x floor':>8}  note"
    ]
    for r in results:
        if r.scenario.startswith(STATEMENTS):
            lines.append(
                f"{r.scenario:<30} {r.workers:>2} {'':>5} "
                + ", ".join(f"{k} {v:.2f}" for k, v in r.extra.items())
                + f"  {r.note}"
            )
            continue
        if r.scenario == "rss_per_worker_mb":
            lines.append(
                f"{'rss_per_worker_mb':<30} {r.workers:>2} {'':>5} max {r.extra['max']} MB "
                f"over {int(r.extra['processes'])} processes"
            )
            continue
        key = next((k.removesuffix("_median") for k in r.extra if k.endswith("_median")), None)
        if key is not None:
            mark = "o" if key == "x_off" else " "  # 'o': over tracing off, not over the floor
            lines.append(
                f"{r.scenario:<30} {r.workers:>2} {r.connections:>5} {r.rps:>9.1f} {'':>8} {'':>8} {'':>8} "
                f"{'':>6} {r.extra[key + '_median']:>7.2f}{mark}  {r.note}, range "
                f"{r.extra[key + '_min']:.2f}-{r.extra[key + '_max']:.2f}"
                + "".join(
                    f", {name.removeprefix('x_').removesuffix('_median')} x{value:.2f}"
                    for name, value in r.extra.items()
                    if name in ("x_litestar_floor_median", "x_fastapi_median")
                )
            )
            continue
        ratio = ""
        if floor_rps and r.scenario.startswith(("tasks_list", "floor_litestar")):
            ratio = f"{r.rps / floor_rps:.2f}"
        if r.scenario == "login":
            ratio = f"{r.rps / argon2_rps:.2f}a"
        extra = " ".join(f"{k}={v}" for k, v in r.extra.items())
        lines.append(
            f"{r.scenario:<30} {r.workers:>2} {r.connections:>5} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p95_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {r.errors:>6} {ratio:>8}  {r.note} {extra}".rstrip()
        )
    lines.append(
        f"argon2 alone: {argon2_rps:.1f} verifications/s on {os.cpu_count()} cores "
        "('a' ratios are login req/s over this)"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--workers", default="1,2", help="comma list of uvicorn worker counts")
    parser.add_argument(
        "--rounds", type=int, default=3, help=f"rounds of {INTERLEAVED} (service, floor, Litestar floor)"
    )
    parser.add_argument("--only", type=lambda v: set(v.split(",")), default=None, help="scenario names")
    args = parser.parse_args()
    wrk = ensure_wrk()

    from service.db import migrations
    from service.db.embedded import EmbeddedPostgres

    results: list[Result] = []
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        database = EmbeddedPostgres(data_dir)
        database_url = database.start()
        stack.callback(database.stop)
        migrations.apply_pending(database_url)
        ai_port = free_port()
        env = {
            **os.environ,
            "ENVIRONMENT": "production",
            "DATABASE_URL": database_url,
            "DATA_DIR": str(data_dir),
            "JWT_SECRET": "bench-" + "k" * 40,
            "AI_SERVICE_URL": f"http://127.0.0.1:{ai_port}",
            "RATE_LIMIT_PER_MINUTE": "100000000",
            "AUTH_RATE_LIMIT_PER_MINUTE": "100000000",
            "LOGIN_MAX_FAILURES": "1000000",
            "SHUTDOWN_DRAIN_SECONDS": "0",
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
            "BETTER_AUTH_SECRET": BETTER_AUTH_SECRET,
            "SUPABASE_JWT_SECRET": SUPABASE_JWT_SECRET,
        }
        stack.enter_context(
            started(
                [sys.executable, "-m", "service.cli", "demo-ai", "--port", str(ai_port)],
                env,
                f"http://127.0.0.1:{ai_port}/scan",
                any_status=True,
            )
        )
        for workers in (int(w) for w in args.workers.split(",")):
            print(f"== {workers} worker(s)")
            bench_workers(args, wrk, env, workers, results)
            if workers == 1:
                bench_floor(args, wrk, env, results)
                bench_interleaved(args, wrk, env, results)
                bench_statements(args, env, results)
                bench_tracing(args, wrk, env, results)
        print("== argon2 alone")
        argon2_rps = argon2_alone(env)

    floor = next((r.rps for r in results if r.scenario == "floor_tasks_list"), None)
    report = table(results, floor, argon2_rps)
    print()
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    payload = {
        "when": stamp,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "duration_s": args.duration,
        "argon2_alone_per_s": round(argon2_rps, 1),
        "floor_tasks_list_rps": floor,
        "results": [asdict(r) for r in results],
        "table": report,
    }
    for name in (f"{stamp}.json", "latest.json"):
        (RESULTS / name).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
