"""The results of a run: one typed record per scenario, the printed table and the JSON files."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FLOOR = "floor_tasks_list"
STATEMENTS = "statements_per_request"


@dataclass(kw_only=True)
class Result:
    """One scenario's figures at one worker count; `extra` holds what only some scenarios have
    (ratios over the rounds, statements per request, RSS)."""

    scenario: str
    workers: int
    connections: int = 0
    rps: float = 0
    p50_ms: float = 0
    p95_ms: float = 0
    p99_ms: float = 0
    max_ms: float = 0
    requests: int = 0
    errors: int = 0
    # CPU (user + system) of the server's process tree and of the embedded PostgreSQL's over the
    # wrk run, in microseconds per request wrk counted (bench/processes.py, tree_cpu_seconds).
    cpu_us_per_req: float = 0
    pg_us_per_req: float = 0
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def floor_by_workers(results: list[Result]) -> dict[int, float]:
    """The bare floor's task-list req/s at each worker count it was measured with."""
    return {r.workers: r.rps for r in results if r.scenario == FLOOR}


def floor_cpu_by_workers(results: list[Result]) -> dict[int, float]:
    """The bare floor's server CPU per task list (us) at each worker count."""
    return {r.workers: r.cpu_us_per_req for r in results if r.scenario == FLOOR and r.cpu_us_per_req}


def table(results: list[Result], argon2_rps: float) -> str:
    """The printed table; `x floor` is over the bare floor with the same worker count."""
    floors = floor_by_workers(results)
    floor_cpus = floor_cpu_by_workers(results)
    lines = [
        f"{'scenario':<30} {'w':>2} {'conn':>5} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6} {'x floor':>8} {'cpu us/req':>10} {'pg us/req':>9} {'cpu x fl':>8}  note"
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
        ratio = cpu_ratio = ""
        floor_rps = floors.get(r.workers)
        if floor_rps and r.scenario.startswith(("tasks_list", "floor_litestar")):
            ratio = f"{r.rps / floor_rps:.2f}"
        floor_cpu = floor_cpus.get(r.workers)
        if floor_cpu and r.cpu_us_per_req and r.scenario.startswith(("tasks_list", "floor_")):
            cpu_ratio = f"{r.cpu_us_per_req / floor_cpu:.2f}"
        if r.scenario == "login" and argon2_rps:
            ratio = f"{r.rps / argon2_rps:.2f}a"
        extra = " ".join(f"{k}={v}" for k, v in r.extra.items())
        cpu = f"{r.cpu_us_per_req:.0f}" if r.cpu_us_per_req else ""
        pg = f"{r.pg_us_per_req:.0f}" if r.pg_us_per_req else ""
        lines.append(
            f"{r.scenario:<30} {r.workers:>2} {r.connections:>5} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p95_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {r.errors:>6} {ratio:>8} {cpu:>10} {pg:>9} {cpu_ratio:>8}  {r.note} {extra}".rstrip()
        )
    if argon2_rps:
        lines.append(
            f"argon2 alone: {argon2_rps:.1f} verifications/s on {os.cpu_count()} cores "
            "('a' ratios are login req/s over this)"
        )
    return "\n".join(lines)


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def markdown(results: list[Result], argon2_rps: float) -> str:
    """The issue's tables (contenders, 1000 users, workers, regressions) with each target's
    verdict, as markdown; empty when none of those scenarios ran."""
    by_name = {r.scenario: r for r in results}
    out: list[str] = []
    contenders = [r for r in results if r.scenario.startswith("contenders_")]
    if contenders:
        out += [
            "Task list, 64 connections, one uvicorn worker each, all running at once, driven in turn; "
            "medians over the rounds (ratios: median of the per-round ratios, range in brackets).",
            "",
            "| contender | req/s | p95 ms | server CPU us/req | x same-answer floor CPU "
            "| x minimal floor CPU | PG CPU us/req |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in contenders:
            label = r.note.split(";")[0]
            same_x = (
                f"{r.extra['cpu_x_same']:.2f} ({r.extra['cpu_x_lo_same']:.2f}-{r.extra['cpu_x_hi_same']:.2f})"
                if "cpu_x_same" in r.extra
                else ""
            )
            out.append(
                f"| {label} | {r.rps:,.0f} | {r.p95_ms:.1f} | {r.cpu_us_per_req:.0f} | {same_x} | "
                f"{r.extra['cpu_x']:.2f} ({r.extra['cpu_x_lo']:.2f}-{r.extra['cpu_x_hi']:.2f}) | "
                f"{r.pg_us_per_req:.0f} |"
            )
        out.append("")
        service = by_name.get("contenders_service")
        if service and "cpu_x_same" in service.extra:
            ratio = service.extra["cpu_x_same"]
            out.append(
                f"- service CPU per request / the floor doing the same work (same answer, same log "
                f"line, metrics and rate-limit count): {ratio:.3f}x "
                f"({service.extra['cpu_x_lo_same']:.2f}-{service.extra['cpu_x_hi_same']:.2f}), "
                f"target <= 1.10x: {_verdict(ratio <= 1.10)}"
            )
        if service:
            out.append(
                f"- service / minimal floor (token cache; no headers, log or metrics): "
                f"{service.extra['cpu_x']:.2f}x (for reference)"
            )
            uncached = by_name.get("contenders_floor_no_cache")
            if uncached and uncached.cpu_us_per_req:
                out.append(
                    f"- service / floor (no cache): {service.cpu_us_per_req / uncached.cpu_us_per_req:.2f}x "
                    "(medians; for reference, the floor without the service's token cache)"
                )
        for key, limit in (
            ("traced_10", 1.10),
            ("traced_100", 1.5),
            ("traced_10_rx", 1.10),
            ("traced_100_rx", 1.5),
        ):
            traced = by_name.get(f"contenders_{key}")
            if traced and "cpu_x_service" in traced.extra:
                ratio = traced.extra["cpu_x_service"]
                out.append(
                    f"- {traced.note.split(';')[0]}: CPU per request {ratio:.3f}x untraced "
                    f"({traced.extra['cpu_x_lo_service']:.2f}-{traced.extra['cpu_x_hi_service']:.2f}), "
                    f"target <= {limit:.2f}x: {_verdict(ratio <= limit)}"
                )
        out.append("")
    service, floor = by_name.get("users1000_service"), by_name.get("users1000_floor_cache")
    same = by_name.get("users1000_floor_same")
    if service and floor:
        out += [
            f"{service.connections} users, 500 ms think time, one worker each, in turn; medians over the rounds.",
            "",
            "| server | req/s | p95 ms | p99 ms | server CPU us/req | PG CPU us/req | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in (row for row in (same, floor, service) if row):
            out.append(
                f"| {r.note.split(';')[0]} | {r.rps:,.0f} | {r.p95_ms:.1f} | {r.p99_ms:.1f} | "
                f"{r.cpu_us_per_req:.0f} | {r.pg_us_per_req:.0f} | {r.errors} |"
            )
        x = service.extra
        out.append("")
        for suffix, name in (("_same", "the same-answer floor's"), ("", "the minimal floor's")):
            if f"rps_x{suffix}" not in x:
                continue
            rps_x, p95_x, p99_x = x[f"rps_x{suffix}"], x[f"p95_x{suffix}"], x[f"p99_x{suffix}"]
            out += [
                f"- against {name}: throughput {rps_x:.2f}x, target >= 0.95x: {_verdict(rps_x >= 0.95)}; "
                f"p95 {p95_x:.2f}x, target <= 1.2x: {_verdict(p95_x <= 1.2)}; "
                f"p99 {p99_x:.2f}x, target <= 1.5x: {_verdict(p99_x <= 1.5)}",
            ]
        out += [f"- p95 {service.p95_ms:.1f} ms, target < 200 ms: {_verdict(service.p95_ms < 200)}", ""]
    two = by_name.get("workers_ratio_w2")
    if two:
        out += [
            f"- `--workers 2` over 1 on {os.cpu_count()} cores: {two.extra['rps_x']:.2f}x the req/s "
            f"({two.rps:,.0f} against {by_name['workers_ratio_w1'].rps:,.0f}), CPU per request "
            f"{two.extra['cpu_x']:.2f}x. Less than 2: PostgreSQL and wrk run on the same cores.",
            "",
        ]
    rows = [
        by_name[name] for name in ("login", "login_ratio", "tasks_create", "scan_submit") if name in by_name
    ]
    if rows:
        out += [
            "| regression row | w | req/s | p95 ms | server CPU us/req | PG CPU us/req | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in rows:
            out.append(
                f"| {r.scenario} | {r.workers} | {r.rps:,.1f} | {r.p95_ms:.1f} | {r.cpu_us_per_req:.0f} | "
                f"{r.pg_us_per_req:.0f} | {r.errors} |"
            )
        turns = by_name.get("login_ratio")
        if turns:
            ratio = turns.extra["login_x"]
            out += [
                "",
                f"- login {ratio:.2f}x argon2 alone ({turns.extra['login_x_lo']:.2f}-"
                f"{turns.extra['login_x_hi']:.2f}; median of per-round ratios, argon2 alone "
                f"{turns.extra['argon2_rps']:.1f} verifications/s), target >= 0.90x: {_verdict(ratio >= 0.90)}",
            ]
            if "login_cpu_x" in turns.extra:
                out.append(
                    f"- by CPU: argon2 alone's per verification over the service's per login "
                    f"{turns.extra['login_cpu_x']:.2f}x (event loop {turns.extra['loop_ms']:.2f} ms, hashing "
                    f"threads {turns.extra['hashing_ms']:.2f} ms per login; PostgreSQL "
                    f"{turns.pg_us_per_req / 1e3:.2f} ms beside them)"
                )
            if "baseline_x" in turns.extra:
                x = turns.extra
                out.append(
                    f"- the baseline checkout in the same rounds: {x['baseline_rps']:.1f} logins/s, "
                    f"{x['baseline_x']:.2f}x argon2 alone (event loop {x['baseline_loop_ms']:.2f} ms, "
                    f"PostgreSQL {x['baseline_pg_ms']:.2f} ms per login); this checkout over it "
                    f"{x['service_over_baseline']:.3f}x ({x['service_over_baseline_lo']:.2f}-"
                    f"{x['service_over_baseline_hi']:.2f}), a regression below 1"
                )
        login = by_name.get("login")
        if login and argon2_rps and not turns:
            ratio = login.rps / argon2_rps
            out += [
                "",
                f"- login {ratio:.2f}x argon2 alone ({argon2_rps:.1f} verifications/s), "
                f"target >= 0.90x: {_verdict(ratio >= 0.90)}",
            ]
    return "\n".join(out).strip()


def write_results(
    results: list[Result], report: str, *, duration: int, argon2_rps: float, summary: str = ""
) -> Path:
    """bench/results/<timestamp>.json and latest.json; the path of the first."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    payload = {
        "when": stamp,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "duration_s": duration,
        "argon2_alone_per_s": round(argon2_rps, 1),
        "floor_tasks_list_rps_by_workers": floor_by_workers(results),
        "results": [asdict(r) for r in results],
        "table": report,
        "markdown": summary,
    }
    for name in (f"{stamp}.json", "latest.json"):
        (RESULTS / name).write_text(json.dumps(payload, indent=2) + "\n")
    return RESULTS / f"{stamp}.json"
