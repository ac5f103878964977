"""The processes of a run: servers started on loopback and stopped by process group, wrk, and
the CPU time each process tree spends while wrk runs (from /proc/PID/stat)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
REPORT_LUA = (ROOT / "bench" / "report.lua").read_text()
USERS = 1000
WRK_THREADS = 2
SETTLE_SECONDS = 3


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
    command: list[str],
    env: dict[str, str],
    ready_url: str,
    any_status: bool = False,
    cwd: Path = ROOT,
    ready_timeout: float = 60,
) -> Iterator[subprocess.Popen[bytes]]:
    # Logs (one access-log line a request) go nowhere while measured, as in every earlier round.
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        try:
            wait_ready(ready_url, process, timeout=ready_timeout, any_status=any_status)
        except RuntimeError as exc:
            if process.poll() is None:
                raise
            raise RuntimeError(
                f"{exc}; run again, its stderr ends:\n{why_it_exits(command, env, cwd)}"
            ) from None
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def why_it_exits(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> str:
    """The end of the stderr of `command` run once more (it exited before it was ready)."""
    rerun = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _, stderr = rerun.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(rerun.pid, signal.SIGKILL)
        _, stderr = rerun.communicate()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(rerun.pid, signal.SIGKILL)  # anything it started
    return stderr.decode(errors="replace")[-3000:]


def worker_pids(parent: int) -> list[int]:
    """`parent` and every process below it (children of any of its threads, recursively)."""
    pids: list[int] = []
    try:
        tasks = list(Path(f"/proc/{parent}/task").iterdir())
    except FileNotFoundError:
        return [parent]
    for task in tasks:
        try:
            pids.extend(int(p) for p in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    nested = [pid for child in dict.fromkeys(pids) for pid in worker_pids(child)]
    return [parent, *nested]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of `root`'s process tree so far: for each live process, utime + stime
    (fields 14 and 15 of /proc/PID/stat, all its threads) + cutime + cstime (16 and 17: its
    children that exited and were reaped, so a PostgreSQL backend or a uvicorn worker that ends
    between two samples still counts). Sampled right before and right after wrk."""
    ticks = 0
    for pid in worker_pids(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3; the name may hold spaces
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


_POSTGRES: dict[str, int] = {}


def thread_ticks(pid: int) -> dict[int, tuple[int, int, int]]:
    """Each thread of process `pid`: tid -> (utime, stime in clock ticks, minor page faults)
    (/proc/PID/task/TID/stat; a thread that ends meanwhile is left out)."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text(encoding="ascii")
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(tid)] = (int(fields[11]), int(fields[12]), int(fields[7]))
    return found


def hashing_split(root: int) -> Callable[[], tuple[float, float]]:
    """A clock of the service worker below `root` (its process with the most threads): each call
    gives (event loop thread, all its other threads) CPU seconds so far. Under logins the other
    threads' CPU is the hashing threads' (Python 3.11 does not name threads for the kernel, so
    they cannot be told apart by name; bench/thread_cpu.py, which lists every thread, shows no
    CPU on any but the loop and the two hashing threads during a login run)."""
    worker = max(worker_pids(root), key=lambda pid: len(thread_ticks(pid)))

    def now() -> tuple[float, float]:
        ticks = thread_ticks(worker)
        loop = sum(ticks.pop(worker, (0, 0, 0))[:2])
        others = sum(user + system for user, system, _ in ticks.values())
        return loop / CLOCK_TICKS, others / CLOCK_TICKS

    return now


def wait_until_idle(root: int, deadline_seconds: float = 5.0, step: float = 0.1) -> float:
    """Wait until `root`'s process tree uses under a tenth of a core over `step` s (a server
    finishing the requests wrk left queued when it stopped: up to 16 logins' argon2 work), at
    most `deadline_seconds`; the seconds waited."""
    started = time.monotonic()
    before = tree_cpu_seconds(root)
    while time.monotonic() - started < deadline_seconds:
        time.sleep(step)
        now = tree_cpu_seconds(root)
        if now - before < 0.1 * step:
            break
        before = now
    return time.monotonic() - started


def watch_postgres(pgdata: Path) -> int:
    """Count the embedded PostgreSQL (its postmaster and every process below it: backends, which
    persist in the pools, and the checkpointer, writers, autovacuum) in every wrk run's figures."""
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    _POSTGRES["pid"] = pid
    return pid


def raise_open_files(needed: int = 4 * USERS + 1024) -> int:
    """Raise this process's soft RLIMIT_NOFILE (inherited by wrk and the servers) to `needed`,
    within the hard limit: 1000 connections need 1000 descriptors in wrk and in the server."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def run_wrk(
    wrk: str,
    url: str,
    script: str,
    *,
    connections: int,
    duration: int,
    threads: int = WRK_THREADS,
    timeout: int = 10,
    server: int | None = None,
) -> dict[str, float]:
    """One wrk run; its figures (report.lua's JSON line, rps) and, when `server` (the root pid of
    the server's process tree) is given, `cpu_us` and `pg_us`: the CPU the server's processes and
    the embedded PostgreSQL's spent during the run, in microseconds per request wrk counted."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script + "\n" + REPORT_LUA)
    postgres = _POSTGRES.get("pid")
    cpu_before = tree_cpu_seconds(server) if server else 0.0
    pg_before = tree_cpu_seconds(postgres) if postgres else 0.0
    busy_before, started = machine_busy_seconds(), time.monotonic()
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
        cpu_spent = tree_cpu_seconds(server) - cpu_before if server else 0.0
        pg_spent = tree_cpu_seconds(postgres) - pg_before if postgres else 0.0
        busy = machine_busy_seconds() - busy_before
        elapsed = time.monotonic() - started
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
    # Cores the machine left idle over the run (wrk's start and exit included): where the work
    # could not keep every core busy (a thread waiting for the GIL, a queue run dry).
    figures["machine_busy_s"] = busy
    figures["idle_cores"] = max(0.0, (os.cpu_count() or 1) - busy / elapsed)
    if server and figures["requests"]:
        figures["cpu_us"] = cpu_spent * 1e6 / figures["requests"]
    if postgres and server and figures["requests"]:
        figures["pg_us"] = pg_spent * 1e6 / figures["requests"]
    return figures


def floor_command(target: str, port: int, workers: int = 1) -> list[str]:
    """A floor app under the service's uvicorn settings (service/cli.py)."""
    return [
        *(sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", str(workers)),
        *("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"),
        *("--no-proxy-headers", "--no-server-header"),
    ]


def service_command(port: int, workers: int, python: str = sys.executable) -> list[str]:
    return [python, "-m", "service.cli", "serve", "--port", str(port), "--workers", str(workers)]
