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
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def floor_by_workers(results: list[Result]) -> dict[int, float]:
    """The bare floor's task-list req/s at each worker count it was measured with."""
    return {r.workers: r.rps for r in results if r.scenario == FLOOR}


def table(results: list[Result], argon2_rps: float) -> str:
    """The printed table; `x floor` is over the bare floor with the same worker count."""
    floors = floor_by_workers(results)
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
        floor_rps = floors.get(r.workers)
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


def write_results(results: list[Result], report: str, *, duration: int, argon2_rps: float) -> Path:
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
    }
    for name in (f"{stamp}.json", "latest.json"):
        (RESULTS / name).write_text(json.dumps(payload, indent=2) + "\n")
    return RESULTS / f"{stamp}.json"
