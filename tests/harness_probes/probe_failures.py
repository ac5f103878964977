"""Run only by tests/foundation/test_process_cleanup.py: tests that outlive their time limit or
fail with a process running, each followed by one that must still run (and find it stopped)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from tests import reaper

STARTED: list[int] = []


def waits_on_something_that_never_comes() -> None:
    time.sleep(600)


@pytest.mark.timeout(3)
def test_outlives_its_limit() -> None:
    waits_on_something_that_never_comes()


def test_runs_after_the_one_that_timed_out() -> None:
    assert True


@pytest.mark.timeout(3)
async def test_an_async_test_outlives_its_limit() -> None:
    await asyncio.sleep(600)


def test_runs_after_the_async_one() -> None:
    assert True


def test_fails_with_a_process_running() -> None:
    STARTED.append(reaper.popen(["sleep", "600"]).pid)
    raise AssertionError("failed before its cleanup")


def test_the_failed_tests_process_is_gone() -> None:
    [pid] = STARTED
    state = Path(f"/proc/{pid}/stat")
    assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
