"""Run only by tests/foundation/test_process_cleanup.py: tests that outlive their time limit,
each followed by one that must still run."""

from __future__ import annotations

import asyncio
import time

import pytest


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
