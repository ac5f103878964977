"""The suite's tiers and its last-resort time limit; tests/conftest.py wires them in.

Tiers: a test is `slow` when it or one of its fixtures starts OS processes or needs a system tool
(`service serve`, demo-ai, node, npm, PgBouncer, Chromium, redis-server, prometheus, a PostgreSQL
of its own). `mark_slow_tests` finds them by reading the code: the names a test function or a
fixture function uses, followed through the helpers of tests/ they call, reaching
`subprocess`, `asyncio.create_subprocess_exec`, `EmbeddedPostgres` or `tests.reaper`. A test that
starts processes some other way (or through a fixture it asks for with
`request.getfixturevalue`, which is not followed) is marked `@pytest.mark.slow` by hand.

`uv run pytest -m "not slow"` is the fast tier (`-n 2` spreads it over two cores with pytest-xdist);
`uv run pytest` runs everything.

Time limits: pytest-timeout fails a test that runs past its limit (pyproject.toml's `timeout`, or
`@pytest.mark.timeout(N)`) with every thread's stack, and the run goes on. Should a test not
return to Python when that limit fires (stuck in C), `HardDeadline` dumps the stacks, stops every
process of the run and ends it, GRACE_SECONDS later.
"""

from __future__ import annotations

import asyncio
import faulthandler
import inspect
import os
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from service.db.embedded import EmbeddedPostgres
from tests import reaper

# Fixtures that may start a process once per session but stay in the fast tier: the session's
# database (an embedded PostgreSQL unless TEST_DATABASE_URL names a server; nearly every test uses
# it), and `service openapi -o` (one import of the app, about 2 s) writing the document the
# OpenAPI tests read.
FAST_DESPITE_A_PROCESS = frozenset({"database_url", "openapi_file"})
# The callables that start processes, besides anything of the `subprocess` module.
STARTERS: tuple[object, ...] = (
    EmbeddedPostgres,
    asyncio.create_subprocess_exec,
    asyncio.create_subprocess_shell,
    reaper.popen,
    reaper.run,
    reaper.started,
)
GRACE_SECONDS = 60.0
# Fixtures that run `npm ci` (up to 300 s on a cold cache) for the first test that asks for them:
# those tests get this limit unless they set their own.
NPM_FIXTURES = frozenset({"node", "npm_bin"})
NPM_TEST_SECONDS = 900


def _code_objects(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_objects(constant)


def starts_processes(function: Callable[..., Any], seen: set[int] | None = None) -> bool:
    """Whether `function`, or a function of tests/ it names, names a process starter."""
    seen = set() if seen is None else seen
    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    if code is None or id(code) in seen:
        return False
    seen.add(id(code))
    names = getattr(function, "__globals__", {})
    for each in _code_objects(code):
        for name in each.co_names:
            if name not in names:
                continue
            found = names[name]
            if found is subprocess or any(found is starter for starter in STARTERS):
                return True
            if _ours(found) and starts_processes(found, seen):
                return True
    return False


def _ours(thing: object) -> bool:
    target = inspect.unwrap(thing) if callable(thing) else thing
    return inspect.isfunction(target) and target.__module__.startswith("tests.")


def _fixture_functions(item: pytest.Item) -> Iterable[tuple[str, Callable[..., Any]]]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return
    for name, definitions in info.name2fixturedefs.items():
        for definition in definitions:
            yield name, definition.func


def is_slow(item: pytest.Item) -> bool:
    if item.get_closest_marker("slow"):
        return True
    function = getattr(item, "function", None)
    if function is not None and starts_processes(function):
        return True
    return any(
        name not in FAST_DESPITE_A_PROCESS and _ours(func) and starts_processes(func)
        for name, func in _fixture_functions(item)
    )


def mark_slow_tests(items: list[pytest.Item]) -> None:
    """`slow` on the tests that start processes; the longer time limit on those that may run npm ci."""
    for item in items:
        if is_slow(item) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & NPM_FIXTURES and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(NPM_TEST_SECONDS))


def time_limit(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    option = item.config.getoption("timeout", None)
    if option is not None:
        return float(option)
    try:
        ini = item.config.getini("timeout")
    except ValueError:  # pytest-timeout not loaded (a run with PYTEST_DISABLE_PLUGIN_AUTOLOAD)
        return 0.0
    return float(ini) if ini else 0.0


class HardDeadline:
    """Ends the run when a test outlives its time limit by GRACE_SECONDS (pytest-timeout's
    signal did not bring it back)."""

    def __init__(self, item: pytest.Item) -> None:
        self.item = item
        limit = time_limit(item)
        self.timer = threading.Timer(limit + GRACE_SECONDS, self._expired) if limit > 0 else None
        if self.timer is not None:
            self.timer.daemon = True

    def __enter__(self) -> HardDeadline:
        if self.timer is not None:
            self.timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def _expired(self) -> None:
        sys.stderr.write(f"\n{self.item.nodeid} outlived its time limit and did not stop; stacks:\n")
        faulthandler.dump_traceback(all_threads=True)
        reaper.stop_everything()
        os._exit(3)
