"""The performance issue's comparisons: contenders side by side, 1000 users, two workers.

`--only contenders`: the task list (20 rows, our HS256 token, 64 connections, one uvicorn
worker each) on every contender, all started at once and driven by wrk in turn, `--rounds`
rounds with the order rotating; each figure is its median over the rounds and each ratio the
median of the per-round ratios (the VM's speed wanders by tens of percent over minutes, so a
ratio is only taken between runs seconds apart). The contenders:

- floor, same answer (bench/floor.py `app_same_answer`): a bare ASGI function doing all of the
  service's work for this request with the service's own pieces and no framework or layers:
  the same status, headers and body (checked before timing, `check_same_answer`), the same
  rate-limit count, caller cache, access-log line and metrics. **This is the floor the targets
  use** ("a bare ASGI floor that does the same work"): service over it is what Litestar, our
  layers and the HTTP protocol's head limits cost.
- floor, token cache (bench/floor.py `app`): the physical minimum (token check through the
  service's VerifiedTokenCache, the query, the encoding; no headers, log or metrics).
- floor, no cache (`app_no_cache`): the same with the full HS256 check (pyjwt decode) on every
  request; reported beside it so the cache's share is visible.
- service; service traced at 10 % and at 100 % with the OTLP endpoint on a closed port (a free
  port nobody listens on, as in the issue: spans are made and batched, the export fails fast);
  the same two with a receiver in this process that reads every batch (the export's encoding
  and sending counted too, the receiver's work not).
- the FastAPI peer (bench/peer_fastapi.py) and the Litestar + advanced-alchemy peer
  (bench/peer_litestar_aa.py), when the `bench` dependency group is installed.

Per contender: req/s, p95 (wrk's done() hook), server CPU per request (utime + stime of the
server's process tree over the run / wrk's request count), its ratio to the floor's in the same
round, and PostgreSQL's CPU per request (the embedded server's whole process tree).

`--only users1000`: 1000 connections, each waiting 500 ms between requests (wrk's `delay()`,
first requests spread over one think time), for `--users-duration` seconds (2 x --duration,
20 s by default): the service and the floor (token cache), one worker each, in turn.

`--only workers_ratio`: the service with 2 workers and with 1, side by side in rounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.floor import check_same_answer
from bench.processes import (
    ROOT,
    USERS,
    floor_command,
    free_port,
    hashing_split,
    run_wrk,
    service_command,
    started,
    wait_until_idle,
)
from bench.report import Result
from bench.scenarios import _SEEDED, TASKS, argon2_alone, get_script, login_script, think_time_script

CONTENDERS = "contenders"
USERS1000 = "users1000"
WORKERS_RATIO = "workers_ratio"
FLOOR_KEY = "floor_cache"
SAME_KEY = "floor_same"


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    command: Callable[[int], list[str]]
    env: dict[str, str]
    ready: str = "/health/ready"
    any_status: bool = False
    cwd: Path = ROOT


def _floor(key: str, label: str, target: str, env: dict[str, str]) -> Server:
    return Server(key, label, lambda port: floor_command(target, port), env, "/", any_status=True)


def _service(key: str, label: str, env: dict[str, str], workers: int = 1) -> Server:
    return Server(key, label, lambda port: service_command(port, workers), env)


def _checkout_service(key: str, checkout: Path, env: dict[str, str]) -> Server:
    """The service as another checkout's code has it (one worker), run with that checkout's own
    virtualenv when it has one (its locked dependencies), else with this interpreter."""
    python = checkout / ".venv" / "bin" / "python"
    interpreter = str(python) if python.exists() else sys.executable
    return Server(
        key,
        f"service at {checkout}",
        lambda port: service_command(port, 1, python=interpreter),
        {**env, "PYTHONPATH": str(checkout)},
        cwd=checkout,
    )


def _traced(env: dict[str, str], endpoint: str, ratio: str) -> dict[str, str]:
    return {
        **env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": ratio,
    }


def installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(name) for name in modules)


def start_all(stack: ExitStack, servers: list[Server]) -> dict[str, tuple[str, int]]:
    """Every server on a free loopback port; key -> (base URL, root pid of its process tree)."""
    running: dict[str, tuple[str, int]] = {}
    for server in servers:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = stack.enter_context(
            started(
                server.command(port),
                server.env,
                base + server.ready,
                any_status=server.any_status,
                cwd=server.cwd,
            )
        )
        running[server.key] = (base, process.pid)
    return running


def check_answers(running: dict[str, tuple[str, int]], token: str, path: str) -> None:
    """Every contender answers the task list with the seeded tasks before it is timed: one that
    answered 401, 403 or an empty page fast would otherwise look cheap."""
    for key, (base, _) in running.items():
        response = httpx.get(base + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        body = response.json() if response.status_code == 200 else None
        items = body.get("items") if isinstance(body, dict) else body  # OffsetPagination or a list
        if not isinstance(items, list) or len(items) != TASKS:
            raise RuntimeError(
                f"{key} answered the task list with {response.status_code}: {response.text[:300]}"
            )


def in_rounds(
    args: argparse.Namespace,
    wrk: str,
    script: str,
    running: dict[str, tuple[str, int]],
    label: str,
    *,
    connections: int = 64,
    duration: int | None = None,
    warm: bool = True,
) -> list[dict[str, dict[str, float]]]:
    """wrk on every server in turn, `--rounds` rounds, the order rotating; each round's figures
    (req/s, percentiles, cpu_us, pg_us) by server key."""
    if warm:  # every pool connection opened, statements prepared, caches filled
        for base, pid in running.values():
            run_wrk(wrk, base, script, connections=64, duration=2, server=pid)
    keys = list(running)
    rounds: list[dict[str, dict[str, float]]] = []
    for number in range(args.rounds):
        measured: dict[str, dict[str, float]] = {}
        first = number % len(keys)
        for key in keys[first:] + keys[:first]:
            base, pid = running[key]
            measured[key] = run_wrk(
                wrk, base, script, connections=connections, duration=duration or args.duration, server=pid
            )
        rounds.append(measured)
        print(
            f"  {label} round {number + 1}: "
            + ", ".join(
                f"{k} {measured[k]['rps']:.0f} req/s {measured[k].get('cpu_us', 0):.0f} us" for k in keys
            )
        )
    return rounds


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarise(
    scenario: str,
    rounds: list[dict[str, dict[str, float]]],
    key: str,
    label: str,
    *,
    baseline: str,
    connections: int,
    workers: int = 1,
) -> Result:
    """`key`'s medians over the rounds and the medians of its per-round ratios to `baseline`."""
    runs = [r[key] for r in rounds]

    def med(field: str) -> float:
        return _median([run.get(field, 0.0) for run in runs])

    def ratio(field: str) -> float:
        pairs = [(r[key].get(field, 0.0), r[baseline].get(field, 0.0)) for r in rounds]
        return round(_median([a / b for a, b in pairs if b]), 3)

    cpu_ratios = [
        r[key].get("cpu_us", 0) / r[baseline]["cpu_us"] for r in rounds if r[baseline].get("cpu_us")
    ]
    return Result(
        scenario=scenario,
        workers=workers,
        connections=connections,
        rps=round(med("rps"), 1),
        p50_ms=round(med("p50_ms"), 2),
        p95_ms=round(med("p95_ms"), 2),
        p99_ms=round(med("p99_ms"), 2),
        max_ms=round(med("max_ms"), 2),
        requests=int(sum(run["requests"] for run in runs)),
        errors=int(sum(run["failed"] for run in runs)),
        cpu_us_per_req=round(med("cpu_us"), 1),
        pg_us_per_req=round(med("pg_us"), 1),
        note=f"{label}; median of {len(rounds)} rounds beside {baseline}",
        extra={
            "rps_x": ratio("rps"),
            "p95_x": ratio("p95_ms"),
            "p99_x": ratio("p99_ms"),
            "cpu_x": ratio("cpu_us"),
            "cpu_x_lo": round(min(cpu_ratios), 3) if cpu_ratios else 0.0,
            "cpu_x_hi": round(max(cpu_ratios), 3) if cpu_ratios else 0.0,
        },
    )


def _task_script() -> str:
    seeded = _SEEDED["done"]
    return get_script(seeded.tasks_token, f"/api/{seeded.tasks_user_id}/tasks")


def _check(running: dict[str, tuple[str, int]]) -> None:
    seeded = _SEEDED["done"]
    check_answers(running, seeded.tasks_token, f"/api/{seeded.tasks_user_id}/tasks")
    if SAME_KEY in running and "service" in running:
        check_same_answer(
            running["service"][0], running[SAME_KEY][0], seeded.tasks_token, seeded.tasks_user_id
        )


def _against(
    result: Result, rounds: list[dict[str, dict[str, float]]], key: str, baseline: str, name: str
) -> None:
    """Add `key`'s per-round CPU, req/s and latency ratios to `baseline` as extra[<field>_<name>]."""
    over = summarise("", rounds, key, "", baseline=baseline, connections=result.connections)
    for field in ("cpu_x", "cpu_x_lo", "cpu_x_hi", "rps_x", "p95_x", "p99_x"):
        result.extra[f"{field}_{name}"] = over.extra[field]


def contender_servers(env: dict[str, str], receiver_url: str | None) -> list[Server]:
    closed = f"http://127.0.0.1:{free_port()}"  # a free port nobody listens on
    servers = [
        _floor(SAME_KEY, "floor, same answer", "bench.floor:app_same_answer", env),
        _floor(FLOOR_KEY, "floor, token cache", "bench.floor:app", env),
        _floor("floor_no_cache", "floor, no cache", "bench.floor:app_no_cache", env),
        _service("service", "service", env),
        _service("traced_10", "service, traced 10 % (closed port)", _traced(env, closed, "0.1")),
        _service("traced_100", "service, traced 100 % (closed port)", _traced(env, closed, "1.0")),
    ]
    if receiver_url:
        servers += [
            _service("traced_10_rx", "service, traced 10 % (receiver)", _traced(env, receiver_url, "0.1")),
            _service("traced_100_rx", "service, traced 100 % (receiver)", _traced(env, receiver_url, "1.0")),
        ]
    if installed("fastapi", "sqlalchemy"):
        servers.append(
            _floor("fastapi", "FastAPI + async SQLAlchemy + pydantic", "bench.peer_fastapi:app", env)
        )
    else:
        print("  (no FastAPI peer: `uv sync --group bench` installs it)")
    if installed("advanced_alchemy", "sqlalchemy"):
        servers.append(
            _floor(
                "litestar_aa",
                "Litestar + advanced-alchemy repository + JWTAuth",
                "bench.peer_litestar_aa:app",
                env,
            )
        )
    else:
        print("  (no Litestar + advanced-alchemy peer: `uv sync --group bench` installs it)")
    return servers


# Ratios each contender is also reported against (besides the floor with the token cache).
AGAINST_SERVICE = ("traced_10", "traced_100", "traced_10_rx", "traced_100_rx")


def bench_contenders(args: argparse.Namespace, wrk: str, env: dict[str, str], results: list[Result]) -> None:
    if args.only and CONTENDERS not in args.only:
        return
    from tests.observability.otlp_receiver import otlp_receiver

    with ExitStack() as stack:
        receiver = stack.enter_context(otlp_receiver(decode=False)) if args.receiver else None
        servers = contender_servers(env, receiver.url if receiver else None)
        running = start_all(stack, servers)
        _check(running)
        rounds = in_rounds(args, wrk, _task_script(), running, CONTENDERS)
        if receiver:
            print(f"  the receiver took {receiver.requests} OTLP export requests")
    for server in servers:
        result = summarise(
            f"{CONTENDERS}_{server.key}", rounds, server.key, server.label, baseline=FLOOR_KEY, connections=64
        )
        _against(result, rounds, server.key, SAME_KEY, "same")
        if server.key in AGAINST_SERVICE:
            _against(result, rounds, server.key, "service", "service")
        results.append(result)


def bench_users1000(args: argparse.Namespace, wrk: str, env: dict[str, str], results: list[Result]) -> None:
    if args.only and USERS1000 not in args.only:
        return
    seeded = _SEEDED["done"]
    script = get_script(seeded.tasks_token, f"/api/{seeded.tasks_user_id}/tasks") + think_time_script(
        staggered=True
    )
    duration = args.users_duration or 2 * args.duration
    servers = [
        _service("service", "service", env),
        _floor(SAME_KEY, "floor, same answer", "bench.floor:app_same_answer", env),
        _floor(FLOOR_KEY, "floor, token cache", "bench.floor:app", env),
    ]
    with ExitStack() as stack:
        running = start_all(stack, servers)
        _check(running)
        for base, pid in running.values():  # warm: the pools open every connection
            run_wrk(wrk, base, _task_script(), connections=64, duration=2, server=pid)
        rounds = in_rounds(
            args, wrk, script, running, USERS1000, connections=USERS, duration=duration, warm=False
        )
    for server in servers:
        result = summarise(
            f"{USERS1000}_{server.key}",
            rounds,
            server.key,
            f"{server.label}; {USERS} users, {duration} s, 500 ms think time",
            baseline=FLOOR_KEY,
            connections=USERS,
        )
        _against(result, rounds, server.key, SAME_KEY, "same")
        results.append(result)


def bench_workers_ratio(
    args: argparse.Namespace, wrk: str, env: dict[str, str], results: list[Result]
) -> None:
    """The service with 2 workers over 1 on the machine's cores, which PostgreSQL and wrk share."""
    if args.only and WORKERS_RATIO not in args.only:
        return
    servers = [_service("w1", "service, 1 worker", env), _service("w2", "service, 2 workers", env, workers=2)]
    with ExitStack() as stack:
        running = start_all(stack, servers)
        _check(running)
        rounds = in_rounds(args, wrk, _task_script(), running, WORKERS_RATIO)
    for server, workers in zip(servers, (1, 2), strict=True):
        results.append(
            summarise(
                f"{WORKERS_RATIO}_{server.key}",
                rounds,
                server.key,
                server.label,
                baseline="w1",
                connections=64,
                workers=workers,
            )
        )


LOGIN_RATIO = "login_ratio"


def bench_login_ratio(args: argparse.Namespace, wrk: str, env: dict[str, str], results: list[Result]) -> None:
    """Logins per second (16 connections, one worker, one argon2id verification each) over argon2
    alone (as many threads as cores verifying in a fresh interpreter, no server), measured in
    turns, `--rounds` rounds of `--duration` s each with the order rotating: the VM's speed
    wanders by tens of percent between minutes, so a ratio of two runs minutes apart says little.
    Each round also splits a login's CPU: the worker's event loop thread, its hashing threads,
    PostgreSQL, and the rest of the machine's busy time (wrk, the kernel's loopback work), and
    gives the service's own CPU per login over argon2 alone's CPU per verification.

    With `--login-baseline DIR`, the service as DIR's code has it (an earlier commit) takes its
    turn in every round too, on the same database and user, so a regression shows as a ratio of
    two servers measured seconds apart rather than of two runs on different days."""
    if args.only and LOGIN_RATIO not in args.only:
        return
    seeded = _SEEDED["done"]
    script = login_script(seeded.tasks_email)
    servers = [_service("service", "service", env)]
    if args.login_baseline:
        servers.append(_checkout_service("baseline", Path(args.login_baseline).resolve(), env))
    pairs: list[tuple[dict[str, float], float]] = []
    baseline_pairs: list[tuple[dict[str, float], float]] = []
    cpu_ratios: list[float] = []
    with ExitStack() as stack:
        running = start_all(stack, servers)
        clocks = {}
        for key, (base, pid) in running.items():
            run_wrk(wrk, base, script, connections=16, duration=2, server=pid)  # warm
            wait_until_idle(pid)
            clocks[key] = hashing_split(pid)

        def timed_logins(key: str) -> dict[str, float]:
            base, pid = running[key]
            loop, hashing = clocks[key]()
            login = run_wrk(wrk, base, script, connections=16, duration=args.duration, server=pid)
            loop_after, hashing_after = clocks[key]()
            per = 1e3 / max(1.0, login["requests"])  # seconds per run -> ms per login
            login["loop_ms"] = (loop_after - loop) * per
            login["hashing_ms"] = (hashing_after - hashing) * per
            login["busy_ms"] = login["machine_busy_s"] * per
            # The logins wrk left queued are still being hashed when it stops: the next turn
            # (argon2 alone, or the other server) waits until they are done.
            wait_until_idle(pid)
            return login

        turns = ["alone", *running]
        for number in range(args.rounds):
            measured: dict[str, dict[str, float]] = {}
            alone = alone_cpu = 0.0
            for turn in turns[number % len(turns) :] + turns[: number % len(turns)]:
                if turn == "alone":
                    alone, alone_cpu = argon2_alone(env, seconds=args.duration)
                else:
                    measured[turn] = timed_logins(turn)
            login = measured["service"]
            pairs.append((login, alone))
            if "baseline" in measured:
                baseline_pairs.append((measured["baseline"], alone))
            service_ms, pg_ms = login.get("cpu_us", 0.0) / 1e3, login.get("pg_us", 0.0) / 1e3
            cpu_ratios.append(alone_cpu * 1e3 / service_ms if service_ms else 0.0)
            print(
                f"  {LOGIN_RATIO} round {number + 1}: login {login['rps']:.1f}/s, argon2 alone "
                f"{alone:.1f}/s, {login['rps'] / alone:.3f}x; per login: service {service_ms:.2f} ms "
                f"(event loop {login['loop_ms']:.2f}, hashing {login['hashing_ms']:.2f}; argon2 alone "
                f"{alone_cpu * 1e3:.2f} per verification), PostgreSQL {pg_ms:.2f}, the rest of the "
                f"machine {login['busy_ms'] - service_ms - pg_ms:.2f}; {login['idle_cores']:.2f} cores idle"
            )
            if "baseline" in measured:
                old = measured["baseline"]
                print(
                    f"  {LOGIN_RATIO} round {number + 1}: baseline {old['rps']:.1f}/s, "
                    f"{old['rps'] / alone:.3f}x argon2 alone; per login: event loop {old['loop_ms']:.2f} ms, "
                    f"hashing {old['hashing_ms']:.2f}, PostgreSQL {old.get('pg_us', 0.0) / 1e3:.2f}"
                )
    ratios = sorted(login["rps"] / alone for login, alone in pairs)
    logins = [login for login, _ in pairs]
    results.append(
        Result(
            scenario=LOGIN_RATIO,
            workers=1,
            connections=16,
            rps=round(_median([run["rps"] for run in logins]), 1),
            p50_ms=round(_median([run["p50_ms"] for run in logins]), 2),
            p95_ms=round(_median([run["p95_ms"] for run in logins]), 2),
            p99_ms=round(_median([run["p99_ms"] for run in logins]), 2),
            max_ms=round(_median([run["max_ms"] for run in logins]), 2),
            requests=int(sum(run["requests"] for run in logins)),
            errors=int(sum(run["failed"] for run in logins)),
            cpu_us_per_req=round(_median([run.get("cpu_us", 0.0) for run in logins]), 1),
            pg_us_per_req=round(_median([run.get("pg_us", 0.0) for run in logins]), 1),
            note=f"login over argon2 alone, {len(pairs)} rounds in turn",
            extra={
                "argon2_rps": round(_median([alone for _, alone in pairs]), 1),
                "login_x": round(_median(ratios), 3),
                "login_x_lo": round(ratios[0], 3),
                "login_x_hi": round(ratios[-1], 3),
                # argon2 alone's CPU per verification over the service's CPU per login
                "login_cpu_x": round(_median(cpu_ratios), 3),
                "loop_ms": round(_median([run["loop_ms"] for run in logins]), 2),
                "hashing_ms": round(_median([run["hashing_ms"] for run in logins]), 2),
                **_baseline_extra(pairs, baseline_pairs),
            },
        )
    )


def _baseline_extra(
    pairs: list[tuple[dict[str, float], float]], baseline_pairs: list[tuple[dict[str, float], float]]
) -> dict[str, float]:
    """The baseline checkout's logins/s over argon2 alone and the service's over the baseline's,
    medians of the per-round ratios, with its CPU split per login; nothing without a baseline."""
    if not baseline_pairs:
        return {}
    old = [login for login, _ in baseline_pairs]
    over_alone = sorted(login["rps"] / alone for login, alone in baseline_pairs)
    over_old = sorted(
        new["rps"] / former["rps"] for (new, _), (former, _) in zip(pairs, baseline_pairs, strict=True)
    )
    return {
        "baseline_rps": round(_median([run["rps"] for run in old]), 1),
        "baseline_x": round(_median(over_alone), 3),
        "service_over_baseline": round(_median(over_old), 3),
        "service_over_baseline_lo": round(over_old[0], 3),
        "service_over_baseline_hi": round(over_old[-1], 3),
        "baseline_loop_ms": round(_median([run["loop_ms"] for run in old]), 2),
        "baseline_pg_ms": round(_median([run.get("pg_us", 0.0) for run in old]) / 1e3, 2),
    }
