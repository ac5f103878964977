"""Server CPU per request of the task list, tracing off and on (10 % and 100 % sampled).

One worker on loopback, a Better Auth HS256 token (as bench/scenarios.py makes them), wrk with
64 connections; the CPU is utime + stime of the server's process tree from /proc, before and
after each run, divided by wrk's request count. The collector is a closed port, so export fails
(the exporter's thread still encodes every batch and tries to send it); the `_rx` cases export
to a receiver on loopback instead, which reads every batch.

    uv run python bench/tracing_cpu.py --database-url postgresql://postgres@127.0.0.1:5432/bench \\
        --sources new=.,old=/tmp/main-src      # main's code: git archive main | tar -x -C /tmp/main-src

Every server runs at once; wrk drives each in turn, the order rotating each round, and the
median per server is reported (the machine's other load moves single figures a lot).

The database must be migrated (`service migrate`) and is written to (20 tasks of one subject).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.processes import free_port, started, worker_pids
from bench.scenarios import BETTER_AUTH_SECRET, external_tokens
from tests.observability.otlp_receiver import otlp_receiver
from tests.processes import closed_port_url

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = "bench-subject-tracing"
CASES = {
    "off": None,
    "traced_0": "0",
    "traced_10": "0.1",
    "traced_100": "1.0",
    # The same, exporting to a receiver on loopback that reads every batch (a collector that is up).
    "traced_10_rx": "0.1",
    "traced_100_rx": "1.0",
}
DEFAULT_CASES = "off,traced_0,traced_10,traced_100"


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
    parser.add_argument(
        "--sources", default=f"this={ROOT}", help="name=checkout,... whose service/ is served, side by side"
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default=DEFAULT_CASES, help=f"a comma list of {', '.join(CASES)}")
    parser.add_argument("--profile", default="", help="the server (name:case) to sample with py-spy")
    parser.add_argument(
        "--profile-out",
        default=str(Path(tempfile.gettempdir()) / "tracing_cpu_stacks.txt"),
        help="py-spy's raw stacks (profile_summary.py)",
    )
    args = parser.parse_args()
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "ACCOUNT_MAIL": "off",
        "DATABASE_URL": args.database_url,
        "JWT_SECRET": "bench-" + "k" * 40,
        "MFA_ENCRYPTION_KEY": "bench-mfa-" + "m" * 40,  # production requires it
        "BETTER_AUTH_SECRET": BETTER_AUTH_SECRET,
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "AUTH_RATE_LIMIT_PER_MINUTE": "100000000",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "LOG_LEVEL": "INFO",
    }
    token = external_tokens(SUBJECT)["better_auth"]
    path = f"/api/{SUBJECT}/tasks"
    auth = {"Authorization": f"Bearer {token}"}
    script = Path(tempfile.mkdtemp(prefix="tracing-cpu-")) / "auth.lua"
    script.write_text(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    servers: dict[str, tuple[str, int]] = {}
    with ExitStack() as stack:
        receiver = stack.enter_context(otlp_receiver(decode=False))
        for source in args.sources.split(","):
            name, _, checkout = source.partition("=")
            for case in args.cases.split(","):
                case_env = {**env, "PYTHONPATH": checkout}
                if CASES[case] is not None:
                    case_env |= {
                        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url
                        if case.endswith("_rx")
                        else closed_port_url(),
                        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                        "OTEL_TRACES_SAMPLER_ARG": str(CASES[case]),
                    }
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                command = [
                    sys.executable,
                    "-m",
                    "service.cli",
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ]
                server = stack.enter_context(
                    started(command, case_env, f"{base}/health/ready", cwd=Path(checkout))
                )
                servers[f"{name}:{case}"] = (base, server.pid)
        first = next(iter(servers.values()))[0]
        listed = httpx.get(first + path, headers=auth)
        listed.raise_for_status()
        for number in range(20 - len(listed.json())):
            httpx.post(first + path, json={"title": f"Task {number}"}, headers=auth).raise_for_status()
        for base, _ in servers.values():  # warm up: pool connections opened, statements prepared
            subprocess.run(
                ["wrk", "-t2", "-c64", "-d2s", "-s", str(script), base + path],
                check=True,
                capture_output=True,
            )
        figures: dict[str, list[float]] = {name: [] for name in servers}
        names = list(servers)
        for number in range(args.rounds):
            for name in names[number % len(names) :] + names[: number % len(names)]:
                base, pid = servers[name]
                spy = None
                if name == args.profile and number == 0:
                    spy = subprocess.Popen(
                        [
                            *("py-spy", "record", "-p", str(worker_pids(pid)[-1]), "-d", str(args.duration)),
                            *("-r", "200", "-f", "raw", "-o", args.profile_out, "--nonblocking"),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                before = cpu_ticks(pid)
                ran = subprocess.run(
                    ["wrk", "-t2", "-c64", f"-d{args.duration}s", "-s", str(script), base + path],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                used = cpu_ticks(pid) - before
                if spy is not None:
                    spy.wait(timeout=60)
                requests = wrk_requests(ran.stdout)
                figures[name].append(used / ticks_per_second / requests * 1e6)
                print(
                    f"  round {number + 1} {name:18s} {requests / args.duration:6.0f} req/s  {figures[name][-1]:5.0f} us CPU/request",
                    flush=True,
                )
    script.unlink()
    script.parent.rmdir()
    for name, values in figures.items():
        off = statistics.median(figures[name.partition(":")[0] + ":off"])
        print(
            f"{name:18s} median {statistics.median(values):5.0f} us CPU/request  {statistics.median(values) / off:4.2f}x off"
        )
    # Each round's ratio to tracing off in the same round, seconds apart: the VM's pace drifts
    # between rounds by more than the differences in question, and each round's pair shares it.
    for name, values in figures.items():
        off_name = name.partition(":")[0] + ":off"
        if name == off_name or off_name not in figures:
            continue
        ratios = sorted(v / o for v, o in zip(values, figures[off_name], strict=True))
        low, high = median_interval(ratios)
        print(
            f"{name:18s} per round over off: median {statistics.median(ratios):.3f}, "
            f"95 % interval of the median {low:.3f}-{high:.3f}, range {ratios[0]:.3f}-{ratios[-1]:.3f} "
            f"({len(ratios)} rounds)"
        )


def median_interval(ordered: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median of what `ordered` (sorted) samples: the
    order statistics k and n+1-k, with k the largest for which the binomial(n, 1/2) chance of
    fewer than k samples below the median is at most (1 - confidence) / 2. Needs 6 or more
    samples for 95 %; with fewer, the whole range."""
    n = len(ordered)
    tail = 0.0
    k = 0
    while k < n:
        tail += math.comb(n, k) / 2**n
        if tail > (1 - confidence) / 2:
            break
        k += 1
    if k == 0:
        return ordered[0], ordered[-1]
    return ordered[k - 1], ordered[n - k]


if __name__ == "__main__":
    main()
