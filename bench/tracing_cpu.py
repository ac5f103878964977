"""Server CPU per request of the task list, tracing off and on (10 % and 100 % sampled).

One worker on loopback, a Better Auth HS256 token (as bench/scenarios.py makes them), wrk with
64 connections; the CPU is utime + stime of the server's process tree from /proc, before and
after each run, divided by wrk's request count. The collector is a closed port, so export fails
(the exporter's thread still encodes every batch and tries to send it).

    uv run python bench/tracing_cpu.py --database-url postgresql://postgres@127.0.0.1:5432/bench
    uv run python bench/tracing_cpu.py ... --source /tmp/main-src     # another checkout's code

The database must be migrated (`service migrate`) and is written to (20 tasks of one subject).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.processes import free_port, started, worker_pids
from bench.scenarios import BETTER_AUTH_SECRET, external_tokens
from tests.processes import closed_port_url

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = "bench-subject-tracing"
CASES = {"off": None, "traced_10": "0.1", "traced_100": "1.0"}


def cpu_ticks(pid: int) -> int:
    total = 0
    for process in worker_pids(pid):
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def wrk_requests(output: str) -> int:
    match = re.search(r"(\d+) requests in", output)
    assert match, output
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--source", default=str(ROOT), help="the checkout whose service/ is served")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--profile", default="", help="the case to sample with py-spy")
    parser.add_argument(
        "--profile-out", default="stacks.txt", help="py-spy's raw stacks (profile_summary.py)"
    )
    args = parser.parse_args()
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "ACCOUNT_MAIL": "off",
        "DATABASE_URL": args.database_url,
        "JWT_SECRET": "bench-" + "k" * 40,
        "BETTER_AUTH_SECRET": BETTER_AUTH_SECRET,
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "AUTH_RATE_LIMIT_PER_MINUTE": "100000000",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": args.source,
    }
    token = external_tokens(SUBJECT)["better_auth"]
    path = f"/api/{SUBJECT}/tasks"
    script = Path(tempfile.mkdtemp(prefix="tracing-cpu-")) / "auth.lua"
    script.write_text(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    for case in args.cases.split(","):
        ratio = CASES[case]
        case_env = dict(env)
        if ratio is not None:
            case_env |= {
                "OTEL_EXPORTER_OTLP_ENDPOINT": closed_port_url(),
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": ratio,
            }
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "1"]
        with started(command, case_env, f"{base}/health/ready", cwd=Path(args.source)) as server:
            auth = {"Authorization": f"Bearer {token}"}
            listed = httpx.get(base + path, headers=auth)
            listed.raise_for_status()
            for number in range(20 - len(listed.json())):
                httpx.post(base + path, json={"title": f"Task {number}"}, headers=auth).raise_for_status()
            wrk = ["wrk", "-t2", "-c64", "-s", str(script), base + path]
            subprocess.run([*wrk, "-d2s"], check=True, capture_output=True, timeout=60)  # warm up
            spy = None
            if case == args.profile:
                worker = worker_pids(server.pid)[-1]
                spy = subprocess.Popen(
                    [
                        *("py-spy", "record", "-p", str(worker), "-d", str(args.duration), "-r", "200"),
                        *("-f", "raw", "-o", args.profile_out, "--nonblocking"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            before = cpu_ticks(server.pid)
            ran = subprocess.run(
                [*wrk, f"-d{args.duration}s"], check=True, capture_output=True, text=True, timeout=120
            )
            used = cpu_ticks(server.pid) - before
            if spy is not None:
                spy.wait(timeout=60)
        requests = wrk_requests(ran.stdout)
        print(
            f"{case:11s} {requests:7d} requests  {requests / args.duration:7.0f} req/s  "
            f"{used / ticks_per_second / requests * 1e6:6.0f} us CPU/request",
            flush=True,
        )
    script.unlink()
    script.parent.rmdir()


if __name__ == "__main__":
    main()
