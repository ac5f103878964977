"""A test run cannot hang and leaves nothing running: pytest itself, run on tests/harness_probes.

The probe (an async test) starts an embedded PostgreSQL, `service serve --workers 2` on it, a
child with a grandchild and (where node is installed) a node process, then blocks past every
cancellation of its task. Interrupted by Ctrl+C
(SIGINT) or stopped by SIGTERM, pytest ends within a bound and none of those processes remains.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import reaper

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROBES = PROJECT_ROOT / "tests" / "harness_probes"
# Starting PostgreSQL and two workers on a machine shared by many jobs.
READY_SECONDS = 240
# From the signal to pytest's exit: every group gets reaper.STOP_SECONDS after SIGTERM, and a
# teardown stuck behind the probe's task is cut off after reaper.INTERRUPTED_EXIT_SECONDS.
EXIT_SECONDS = reaper.STOP_SECONDS + reaper.INTERRUPTED_EXIT_SECONDS + 30


def _pytest(probe: str, basetemp: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return reaper.popen(
            # No cache: the probes' failures are not the developer's `--lf`.
            [
                sys.executable,
                "-m",
                "pytest",
                str(PROBES / probe),
                "-q",
                "-p",
                "no:cacheprovider",
                f"--basetemp={basetemp}",
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _groups_alive(groups: list[int]) -> list[str]:
    """`pid (name)` of every live process in one of `groups`."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in groups:
            alive.append(f"{entry.name} ({(entry / 'comm').read_text().strip()})")
    return alive


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(READY_SECONDS + EXIT_SECONDS + 60)
@pytest.mark.parametrize(
    ("signum", "how"), [(signal.SIGINT, "Ctrl+C"), (signal.SIGTERM, "SIGTERM")], ids=["sigint", "sigterm"]
)
def test_an_interrupted_run_stops_every_process_it_started(tmp_path: Path, signum: int, how: str) -> None:
    report = tmp_path / "report.json"
    log = tmp_path / "pytest.log"
    run = _pytest("probe_processes.py", tmp_path / "inner", log, PROBE_REPORT=str(report))
    try:
        deadline = time.monotonic() + READY_SECONDS
        while not report.exists() or not report.read_text():
            assert run.poll() is None, f"the probe's pytest exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the probe did not start:\n{log.read_text()}"
            time.sleep(0.2)
        started = json.loads(report.read_text())
        assert _groups_alive(started["groups"]), "the probe's processes run before the signal"

        signalled = time.monotonic()
        run.send_signal(signum)
        try:
            code = run.wait(timeout=EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"pytest did not end within {EXIT_SECONDS} s of {how}:\n{log.read_text()}")
        took = time.monotonic() - signalled
    finally:
        reaper.stop(run)

    output = log.read_text()
    assert code == 2, f"{how}: exit status {code}, not 2 (interrupted):\n{output}"
    assert _groups_alive(started["groups"]) == [], f"{how} left processes running:\n{output}"
    assert not _alive(started["postmaster"]), f"{how} left the embedded PostgreSQL running"
    assert reaper.marked_processes(started["run"]) == [], f"{how} left a process of the run"
    assert took < EXIT_SECONDS


def test_a_test_past_its_time_limit_or_failing_stops_and_the_run_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "pytest.log"
    run = _pytest("probe_failures.py", tmp_path / "inner", log)
    try:
        code = run.wait(timeout=120)
    finally:
        reaper.stop(run)
    output = log.read_text()
    assert code == 1, output
    assert "3 failed, 3 passed" in output, output
    # Count the failure bodies' "E   Failed: Timeout" lines only: the short summary repeats the
    # message or cuts it, depending on the terminal's width.
    timeouts = [line for line in output.splitlines() if line.startswith("E ")]
    assert sum("Timeout (>3.0s) from pytest-timeout" in line for line in timeouts) == 2, output
    # The stack shows where the test was waiting.
    assert "waits_on_something_that_never_comes" in output, output
