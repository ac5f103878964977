"""Every process a test starts is stopped: after the test, on Ctrl+C, on SIGTERM, at exit.

A test starts its processes with `popen` (or `run`), which puts each in a process group of its
own: Ctrl+C at a terminal then reaches pytest alone, and `stop` ends the whole group (a
`serve --workers 2` parent and its workers, Chromium and its helpers): SIGTERM to the leader,
then SIGKILL to the group after a bound.

What a test's own cleanup misses (pytest interrupted, a test stopped by its time limit, a fixture
whose teardown never ran) `stop_everything` finds, whoever started it:
- every process that carries this run's marker in its environment (`RUN_MARKER`, set when the
  session starts, inherited by every child and grandchild), and
- every PostgreSQL server whose data directory is under the session's temporary directory:
  `pg_ctl start` daemonizes the postmaster into a session of its own, and the postmaster
  overwrites its environment with its process title, so it is found by its `postmaster.pid`.

tests/conftest.py calls it when the session ends, on Ctrl+C, on SIGTERM and at exit.
Linux only (/proc), as the rest of the suite.
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

RUN_MARKER = "SERVICE_TEST_RUN"
# How long a process group has between SIGTERM and SIGKILL (a served app drains in under 1 s with
# SHUTDOWN_DRAIN_SECONDS=0; a loaded machine gets some slack).
STOP_SECONDS = 10.0
# A postmaster asked to quit (SIGQUIT: immediate shutdown, no checkpoint) before SIGKILL.
POSTGRES_STOP_SECONDS = 5.0
# Once interrupted, the run ends within this many seconds even if a teardown hangs.
INTERRUPTED_EXIT_SECONDS = 30.0

_groups: dict[int, subprocess.Popen[Any]] = {}
_lock = threading.RLock()  # re-entered by the SIGTERM handler on the main thread
_temporary_roots: set[Path] = set()


def start_run() -> str:
    """Mark this run: every process started from here on inherits the marker."""
    run_id = uuid.uuid4().hex
    os.environ[RUN_MARKER] = run_id
    return run_id


def watch_directory(path: Path) -> None:
    """PostgreSQL servers with a data directory under `path` are this run's (a session's basetemp)."""
    _temporary_roots.add(path.resolve())


def popen(command: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen` in a process group of its own, known to `stop_everything`."""
    kwargs.setdefault("start_new_session", True)
    process: subprocess.Popen[Any] = subprocess.Popen(command, **kwargs)
    with _lock:
        _groups[process.pid] = process
    return process


def run(command: list[str], *, timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run` whose process group is stopped when it times out or the test is stopped."""
    input_data = kwargs.pop("input", None)
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    check = kwargs.pop("check", False)
    process = popen(command, **kwargs)
    try:
        stdout, stderr = process.communicate(input_data, timeout=timeout)
    finally:
        stop(process)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if check:
        result.check_returncode()
    return result


def stop(process: subprocess.Popen[Any], timeout: float = STOP_SECONDS) -> None:
    """SIGTERM to the process, then SIGKILL to its whole group after `timeout` seconds, and to
    whatever of the group outlives its leader."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
    # Children that stayed behind after their leader exited (a --workers parent killed, say).
    _signal_group(process.pid, signal.SIGKILL)
    with _lock:
        _groups.pop(process.pid, None)


@contextlib.contextmanager
def stopped_afterwards() -> Iterator[None]:
    """Whatever `popen` starts inside the block and is still running at its end is stopped then
    (the body of a test that failed before its own cleanup)."""
    with _lock:
        before = set(_groups)
    try:
        yield
    finally:
        with _lock:
            new = [process for pid, process in _groups.items() if pid not in before]
        for process in new:
            stop(process)


@contextlib.contextmanager
def started(command: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[Any]]:
    """`popen` for the length of a `with` block."""
    process = popen(command, **kwargs)
    try:
        yield process
    finally:
        stop(process)


def stop_everything() -> list[int]:
    """Stop every process of this run (see the module docstring); return the pids stopped."""
    # Signals and /proc only, never a blocking Popen.wait: this runs in a signal handler too,
    # perhaps while the main thread itself waits on one of these processes.
    stopped = _stop_postgres_servers()
    with _lock:
        tracked = list(_groups.values())
        _groups.clear()
    leaders = [process.pid for process in tracked if process.poll() is None]
    strays = [pid for pid in _marked_processes() if pid not in leaders]
    for pid in leaders:
        _signal_group(pid, signal.SIGTERM)
    for pid in strays:
        _signal_process_or_group(pid, signal.SIGTERM)
    _wait_gone(leaders + strays, STOP_SECONDS)
    for pid in leaders:
        _signal_group(pid, signal.SIGKILL)
    for pid in strays:
        _signal_process_or_group(pid, signal.SIGKILL)
    for process in tracked:
        process.poll()  # reaps without blocking
    return stopped + leaders + strays


def install_handlers() -> None:
    """SIGTERM: dump every thread's stack, stop every process, end the run as Ctrl+C would.
    SIGINT (Ctrl+C): KeyboardInterrupt at once, wherever the main thread is. Python's own handler
    does that too, but asyncio.Runner (pytest-asyncio) replaces it with one that only cancels the
    running test's task on the first Ctrl+C: a test stuck past a cancellation kept the run going.
    Either way the run then ends within INTERRUPTED_EXIT_SECONDS.
    At exit: stop every process (a run that ends some other way)."""
    atexit.register(stop_everything)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
        signal.signal(signal.SIGINT, _on_sigint)


_watchdog_started = False


def exit_within_bound(code: int) -> None:
    """The run is being interrupted: whatever teardown is left has INTERRUPTED_EXIT_SECONDS."""
    global _watchdog_started
    if _watchdog_started:
        return
    _watchdog_started = True

    def watchdog() -> None:
        time.sleep(INTERRUPTED_EXIT_SECONDS)
        sys.stderr.write(f"\nthe interrupted run did not end within {INTERRUPTED_EXIT_SECONDS:.0f} s:\n")
        faulthandler.dump_traceback(all_threads=True)
        stop_everything()
        os._exit(code)

    threading.Thread(target=watchdog, name="interrupted-run-watchdog", daemon=True).start()


_terminating = False


def _on_sigint(signum: int, frame: object) -> None:
    exit_within_bound(2)
    raise KeyboardInterrupt


def _on_sigterm(signum: int, frame: object) -> None:
    global _terminating
    if _terminating:
        stop_everything()
        os._exit(128 + signum)
    _terminating = True
    sys.stderr.write("\npytest got SIGTERM; stacks at that moment:\n")
    faulthandler.dump_traceback(all_threads=True)
    stop_everything()
    exit_within_bound(2)  # pytest's status for an interrupted run, whichever way it ends
    raise KeyboardInterrupt("SIGTERM")


def _signal_group(pgid: int, signum: int) -> None:
    if pgid == os.getpgrp():  # never our own group
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _signal_process_or_group(pid: int, signum: int) -> None:
    """The group when the process leads one of its own, else the process alone."""
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return
    if group == pid:
        _signal_group(group, signum)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _wait_gone(pids: Iterable[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    remaining = [pid for pid in pids if _alive(pid)]
    while remaining and time.monotonic() < deadline:
        time.sleep(0.05)
        remaining = [pid for pid in remaining if _alive(pid)]


def _ancestors() -> set[int]:
    pids = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, IndexError, ValueError):
            break
        pids.add(pid)
    return pids


def marked_processes(run_id: str) -> list[int]:
    """Live processes whose environment carries `RUN_MARKER=run_id`."""
    needle = f"{RUN_MARKER}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _marked_processes() -> list[int]:
    run_id = os.environ.get(RUN_MARKER)
    if not run_id:
        return []
    ours = _ancestors()
    return [pid for pid in marked_processes(run_id) if pid not in ours]


def postmaster_pids(roots: Iterable[Path]) -> list[int]:
    """Live postmasters whose data directory (a `postmaster.pid`) is under one of `roots`."""
    pids = []
    for root in roots:
        for pid_file in root.rglob("postmaster.pid"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(pid_file.read_text().splitlines()[0])
                if _alive(pid):
                    pids.append(pid)
    return pids


def _stop_postgres_servers() -> list[int]:
    pids = postmaster_pids(_temporary_roots)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGQUIT)
    _wait_gone(pids, POSTGRES_STOP_SECONDS)
    for pid in pids:
        # pg_ctl starts the postmaster in a session of its own: its group is the server.
        _signal_process_or_group(pid, signal.SIGKILL)
    return pids
