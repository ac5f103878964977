"""The `slow` tier is found by reading the code (tests/harness.py): a test is slow when it, a helper
of tests/ it calls, or one of its fixtures starts a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.db.embedded import EmbeddedPostgres
from tests import harness
from tests.foundation import test_serve
from tests.processes import serve
from tests.tasks import test_crud


def _runs_a_command() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def _starts_a_server(tmp_path: Path) -> None:
    with serve("postgresql://nowhere", tmp_path):
        pass


def _calls_a_helper_that_starts_one(tmp_path: Path) -> None:
    _starts_a_server(tmp_path)


def _starts_postgres(tmp_path: Path) -> None:
    EmbeddedPostgres(tmp_path).start()


def _only_computes() -> int:
    return sum(range(10))


# Reached through a dict, so that the tests below do not name these functions themselves: a test
# that named `_runs_a_command` would be slow too, which is the point.
SAMPLES = {
    "subprocess": _runs_a_command,
    "serve": _starts_a_server,
    "a helper": _calls_a_helper_that_starts_one,
    "EmbeddedPostgres": _starts_postgres,
    "nothing": _only_computes,
}


@pytest.mark.parametrize("name", ["subprocess", "serve", "a helper", "EmbeddedPostgres"])
def test_a_function_that_starts_a_process_is_found(name: str) -> None:
    assert harness.starts_processes(SAMPLES[name])


def test_a_function_that_starts_nothing_is_not() -> None:
    assert not harness.starts_processes(SAMPLES["nothing"])


def test_real_tests_fall_into_their_tier() -> None:
    def tests_of(module: object) -> list[object]:
        return [getattr(module, name) for name in dir(module) if name.startswith("test_")]

    assert len(tests_of(test_serve)) >= 2
    assert all(harness.starts_processes(test) for test in tests_of(test_serve)), "each serves"
    assert len(tests_of(test_crud)) >= 5
    assert not any(harness.starts_processes(test) for test in tests_of(test_crud)), "all in process"


def test_this_run_marks_what_it_collected(request: pytest.FixtureRequest) -> None:
    """In this very session: the tests collected with a process-starting fixture are `slow`."""
    items = request.session.items
    assert request.node.get_closest_marker("slow") is None
    for item in items:
        if "redis_url" in getattr(item, "fixturenames", ()):
            assert item.get_closest_marker("slow"), item.nodeid
