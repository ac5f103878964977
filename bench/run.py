"""The benchmark: a fresh database, the service on loopback, wrk for a bounded time per scenario.

    uv run python bench/run.py                  # every scenario, 1 and 2 workers, ~8 minutes
    uv run python bench/run.py --duration 5 --workers 1 --only tasks_list,floor_tasks_list
    uv run python bench/run.py --workers 1 --only issue   # the performance issue's figures
    uv run python bench/run.py --workers 1 --only contenders,users1000 --duration 3 --rounds 1  # smoke

`--only issue` is contenders,users1000,workers_ratio,login_ratio,tasks_create,scan_submit (see
bench/contenders.py). Every wrk run also reports the server's and PostgreSQL's CPU per request
(`cpu us/req`, `pg us/req`: utime + stime of each process tree from /proc/PID/stat over the
run, divided by wrk's request count) and `cpu x fl`, the CPU per request over the floor's.
The issue's CPU targets use the same-answer floor (bench/floor.py `app_same_answer`: the
service's whole answer and side effects without framework or layers); the minimal floors (with
and without the token cache) are reported beside it.

`uv run python -m bench ...` is the same. Prints a table (`x floor`: over the bare floor run
with the same worker count) and writes bench/results/<timestamp>.json (and latest.json).
Installs wrk with apt-get when it is missing and we are root. Every server binds 127.0.0.1 and is stopped at exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: import `bench` as the package it is
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.contenders import (
    CONTENDERS,
    LOGIN_RATIO,
    USERS1000,
    WORKERS_RATIO,
    bench_contenders,
    bench_login_ratio,
    bench_users1000,
    bench_workers_ratio,
)
from bench.conventions import CONVENTIONS, bench_conventions
from bench.processes import ROOT, ensure_wrk, free_port, raise_open_files, started, watch_postgres
from bench.report import Result, markdown, table, write_results
from bench.scenarios import (
    BETTER_AUTH_SECRET,
    INTERLEAVED,
    SUPABASE_JWT_SECRET,
    argon2_alone,
    bench_floor,
    bench_interleaved,
    bench_statements,
    bench_tracing,
    bench_workers,
)


def _terminated(*_: object) -> None:
    """The first SIGTERM unwinds like Ctrl+C (servers stopped by process group, PostgreSQL
    stopped); a second one does not interrupt that cleanup."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(143)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--workers", default="1,2", help="comma list of uvicorn worker counts")
    parser.add_argument(
        "--rounds", type=int, default=3, help=f"rounds of {INTERLEAVED} (service, floor, Litestar floor)"
    )
    parser.add_argument(
        "--only",
        type=lambda v: {n for name in v.split(",") for n in ISSUE.get(name, (name,))},
        default=None,
        help=f"scenario names; 'issue' is {','.join(ISSUE['issue'])}",
    )
    parser.add_argument(
        "--users-duration", type=int, default=None, help=f"seconds per {USERS1000} run (2 x --duration)"
    )
    parser.add_argument(
        "--no-receiver",
        dest="receiver",
        action="store_false",
        help=f"{CONTENDERS} without the traced services exporting to a receiver (only the closed port)",
    )
    parser.add_argument(
        "--login-baseline",
        default=None,
        help="a checkout (e.g. a worktree of an earlier commit) whose service takes its turn in every "
        "login_ratio round beside this one, on the same database: a login regression measured side by side",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help=f"a checkout without ETags or compression (e.g. /work/main), run beside the service in {CONVENTIONS}",
    )
    args = parser.parse_args()
    wrk = ensure_wrk()
    # SIGTERM unwinds like Ctrl+C: every server is stopped by process group, PostgreSQL too.
    signal.signal(signal.SIGTERM, _terminated)
    open_files = raise_open_files()
    print(f"open files limit {open_files} (wrk and the servers inherit it)")

    from service.db import migrations
    from service.db.embedded import EmbeddedPostgres

    results: list[Result] = []
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        database = EmbeddedPostgres(data_dir)
        database_url = database.start()
        stack.callback(database.stop)
        watch_postgres(database.pgdata)
        migrations.apply_pending(database_url)
        ai_port = free_port()
        env = {
            **os.environ,
            "ENVIRONMENT": "production",
            "DATABASE_URL": database_url,
            "DATA_DIR": str(data_dir),
            "JWT_SECRET": "bench-" + "k" * 40,
            "MFA_ENCRYPTION_KEY": "bench-mfa-" + "m" * 40,  # production requires it
            "AI_SERVICE_URL": f"http://127.0.0.1:{ai_port}",
            "RATE_LIMIT_PER_MINUTE": "100000000",
            "AUTH_RATE_LIMIT_PER_MINUTE": "100000000",
            "LOGIN_MAX_FAILURES": "1000000",
            "SHUTDOWN_DRAIN_SECONDS": "0",
            "ACCOUNT_MAIL": "off",  # production requires SMTP_URL otherwise; no scenario sends mail
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
            bench_floor(args, wrk, env, workers, results)
            if workers == 1:
                bench_interleaved(args, wrk, env, results)
                bench_statements(args, env, results)
                bench_tracing(args, wrk, env, results)
                bench_conventions(args, wrk, env, results)
                bench_contenders(args, wrk, env, results)
                bench_users1000(args, wrk, env, results)
                bench_workers_ratio(args, wrk, env, results)
                bench_login_ratio(args, wrk, env, results)
        argon2_rps = 0.0
        if not args.only or "login" in args.only:  # what login is measured against
            print("== argon2 alone")
            argon2_rps, _ = argon2_alone(env)

    report = table(results, argon2_rps)
    summary = markdown(results, argon2_rps)
    print()
    print(report)
    if summary:
        print()
        print(summary)
    write_results(results, report, duration=args.duration, argon2_rps=argon2_rps, summary=summary)
    return 0


ISSUE = {"issue": (CONTENDERS, USERS1000, WORKERS_RATIO, LOGIN_RATIO, "tasks_create", "scan_submit")}


if __name__ == "__main__":
    raise SystemExit(main())
