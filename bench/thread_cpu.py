"""CPU per request of each thread of one server process, and of PostgreSQL, over one wrk run.

    uv run python bench/thread_cpu.py PID [POSTGRES_PID] -- wrk -t1 -c16 -d10s -s login.lua URL

utime + stime of every thread of PID (/proc/PID/task/*/stat) and, with POSTGRES_PID, of that
PostgreSQL server's whole process tree (bench/processes.py tree_cpu_seconds), before and after
the command, divided by wrk's request count, with each thread's minor page faults per request.
The event loop thread is the one whose id is PID; a login's argon2id verifications run on the
others (bench/profile_login.sh).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.processes import CLOCK_TICKS as TICK
from bench.processes import thread_ticks, tree_cpu_seconds


def main() -> None:
    arguments = sys.argv[1:]
    split = arguments.index("--")
    pids, command = [int(pid) for pid in arguments[:split]], arguments[split + 1 :]
    pid, postgres = pids[0], pids[1] if len(pids) > 1 else None
    before, pg_before = thread_ticks(pid), tree_cpu_seconds(postgres) if postgres else 0.0
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600).stdout
    after, pg_after = thread_ticks(pid), tree_cpu_seconds(postgres) if postgres else 0.0
    found = re.search(r"(\d+) requests in", output)
    if found is None:
        raise SystemExit(f"no request count in the command's output:\n{output}")
    requests = int(found.group(1))
    print(output.strip())
    for tid, (user, system, faults) in sorted(after.items()):
        old_user, old_system, old_faults = before.get(tid, (0, 0, 0))
        spent = user + system - old_user - old_system
        if spent:
            name = "event loop" if tid == pid else f"thread {tid}"
            per = spent / TICK * 1e6 / requests
            print(
                f"{name:14} {per:9.0f} us/request (system {(system - old_system) / TICK * 1e6 / requests:.0f}, "
                f"{(faults - old_faults) / requests:.0f} page faults)"
            )
    if postgres:
        print(f"{'PostgreSQL':14} {(pg_after - pg_before) * 1e6 / requests:9.0f} us/request")


if __name__ == "__main__":
    main()
