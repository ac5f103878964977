"""What ETags and compression cost (`--only conventions`), side by side in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.processes import ROOT, free_port, run_wrk, service_command, started, worker_pids
from bench.report import Result
from bench.scenarios import _register_and_login, get_script, seed_once

CONVENTIONS = "conventions"
LARGE_LIST_TASKS = 200
# Text like a real task's: words that repeat across tasks, and some that do not.
LARGE_DESCRIPTION = (
    "Call {n} about the delivery window for order {n}7{n}; confirm the invoice total and the new address."
)


async def _seed_large_list(base: str) -> tuple[str, str]:
    """A user with LARGE_LIST_TASKS tasks, for a ~40 KB page of 200."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        user_id, token = await _register_and_login(http, "large-list@bench.example")
        auth = {"Authorization": f"Bearer {token}"}
        semaphore = asyncio.Semaphore(16)

        async def one(number: int) -> None:
            async with semaphore:
                body = {
                    "title": f"Task {number}: follow up",
                    "description": LARGE_DESCRIPTION.format(n=number),
                }
                (await http.post(f"/api/{user_id}/tasks", json=body, headers=auth)).raise_for_status()

        await asyncio.gather(*(one(n) for n in range(LARGE_LIST_TASKS)))
    return user_id, token


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (/proc/<pid>/stat fields 14 and 15)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _with_headers(script: str, headers: dict[str, str]) -> str:
    return script + "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in headers.items())


def _compression_table(body: bytes) -> dict[str, float]:
    """Bytes and microseconds to compress `body` once, by codec and level (best of 200 runs)."""
    import timeit
    import zlib

    codecs: dict[str, Callable[[bytes], bytes]] = {
        f"gzip{level}": (lambda data, level=level: zlib.compress(data, level, 31)) for level in (1, 5, 6, 9)
    }
    try:
        import brotli

        for quality in (1, 4, 5):
            codecs[f"br{quality}"] = lambda data, quality=quality: brotli.compress(data, quality=quality)
    except ImportError:
        print("  (no brotli module: `uv sync --group bench` installs it)")
    figures: dict[str, float] = {"identity_bytes": len(body)}
    for name, compress in codecs.items():
        seconds = min(timeit.repeat(lambda compress=compress: compress(body), number=1, repeat=200))
        figures[f"{name}_bytes"] = len(compress(body))
        figures[f"{name}_us"] = round(seconds * 1e6, 1)
    return figures


def bench_conventions(args: argparse.Namespace, wrk: str, env: dict[str, str], results: list[Result]) -> None:
    """What ETags and compression cost, side by side on servers that run at once (one worker
    each), driven in turn for `--rounds` rounds with the order rotating:

    - the 20-row task list, on this service (with its ETag) and on `--baseline` (a checkout
      without ETags, e.g. the main branch), and with a matching If-None-Match (304, no body);
    - a 200-row task list (~40 KB), with `Accept-Encoding: identity` and `gzip`, and on the
      baseline.

    For each: req/s, the server's CPU milliseconds per request (from /proc), bytes per answer.
    """
    if args.only and CONVENTIONS not in args.only:
        return
    servers = {"service": ROOT}
    if args.baseline:
        servers["baseline"] = Path(args.baseline).resolve()
    with ExitStack() as stack:
        bases: dict[str, str] = {}
        processes: dict[str, subprocess.Popen[bytes]] = {}
        for name, checkout in servers.items():
            port = free_port()
            bases[name] = f"http://127.0.0.1:{port}"
            processes[name] = stack.enter_context(
                started(
                    service_command(port, 1),
                    {**env, "PYTHONPATH": str(checkout)},
                    bases[name] + "/health/ready",
                    cwd=checkout,
                )
            )
        seeded = seed_once(bases["service"], env, 0)
        large_user, large_token = asyncio.run(_seed_large_list(bases["service"]))
        small_path = f"/api/{seeded.tasks_user_id}/tasks"
        large_path = f"/api/{large_user}/tasks?limit={LARGE_LIST_TASKS}"
        small = get_script(seeded.tasks_token, small_path)
        large = get_script(large_token, large_path)
        identity = {"Accept-Encoding": "identity"}
        current = httpx.get(
            bases["service"] + small_path, headers={"Authorization": f"Bearer {seeded.tasks_token}"}
        )
        runs: dict[str, tuple[str, str, dict[str, str]]] = {
            "etag_200": ("service", small, identity),
            "etag_304": ("service", small, {**identity, "If-None-Match": current.headers["etag"]}),
            "large_identity": ("service", large, identity),
            "large_gzip": ("service", large, {"Accept-Encoding": "gzip"}),
        }
        if "baseline" in bases:
            runs["baseline_200"] = ("baseline", small, identity)
            runs["baseline_large"] = ("baseline", large, identity)

        answer_bytes = {}
        for name, (server, script, headers) in runs.items():
            path = large_path if script is large else small_path
            token = large_token if script is large else seeded.tasks_token
            with httpx.stream(
                "GET", bases[server] + path, headers={**headers, "Authorization": f"Bearer {token}"}
            ) as response:
                answer_bytes[name] = len(b"".join(response.iter_raw()))
            run_wrk(wrk, bases[server], _with_headers(script, headers), connections=64, duration=2)  # warm

        names = list(runs)
        rounds: list[dict[str, tuple[float, float]]] = []
        for number in range(args.rounds):
            measured: dict[str, tuple[float, float]] = {}
            first = number % len(names)
            for name in names[first:] + names[:first]:
                server, script, headers = runs[name]
                pids = worker_pids(processes[server].pid)
                cpu_before = _cpu_seconds(pids)
                figures = run_wrk(
                    wrk, bases[server], _with_headers(script, headers), connections=64, duration=args.duration
                )
                cpu_ms = (_cpu_seconds(pids) - cpu_before) * 1000 / max(1, figures["requests"])
                measured[name] = (figures["rps"], cpu_ms)
            rounds.append(measured)
            print(
                f"  {CONVENTIONS} round {number + 1}: "
                + ", ".join(f"{n} {measured[n][0]:.1f} req/s {measured[n][1]:.3f} ms CPU" for n in names)
            )
        offline = _compression_table(
            httpx.get(
                bases["service"] + large_path, headers={**identity, "Authorization": f"Bearer {large_token}"}
            ).content
        )
        print("  compressing the 200-row list once: " + ", ".join(f"{k} {v}" for k, v in offline.items()))
    for name in names:
        results.append(
            Result(
                scenario=f"{CONVENTIONS}_{name}",
                workers=1,
                connections=64,
                rps=round(statistics.median(r[name][0] for r in rounds), 1),
                note=f"median of {len(rounds)} rounds",
                extra={
                    "cpu_ms_per_req": round(statistics.median(r[name][1] for r in rounds), 3),
                    "bytes": answer_bytes[name],
                },
            )
        )
    results.append(
        Result(scenario=f"{CONVENTIONS}_compress_once", workers=1, note="200-row list", extra=offline)
    )
