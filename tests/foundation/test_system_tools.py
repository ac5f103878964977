"""A fresh machine: a test whose system tool is missing skips and says how to install it; under
REQUIRE_SYSTEM_TOOLS=1 (set by .ci/run) it fails instead.

Each case runs pytest in a subprocess on real tool-dependent test files, with their tools hidden
from `shutil.which` (what `require_tool` sees where they were never installed), and on a test
asking for a tool no machine has.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.system_tools import REQUIRE_VARIABLE

PROJECT_ROOT = Path(__file__).resolve().parents[2]

HIDE_TOOLS_PLUGIN = """
import os
import shutil

_hidden = set(os.environ["HIDDEN_TOOLS"].split(","))
_which = shutil.which


def _which_unless_hidden(command, *args, **kwargs):
    if os.path.basename(os.fspath(command)) in _hidden:
        return None
    return _which(command, *args, **kwargs)


shutil.which = _which_unless_hidden
"""

BOGUS_TOOL_TEST = """
from tests.system_tools import require_tool


def test_needs_a_tool():
    require_tool("no-such-tool-7f3a", "apt-get install no-such-tool-7f3a")
"""

# Tests that need a system tool, and only such tests: (file or node id, tool as require_tool
# names it, install command). Each asks for its tool's fixture before the database's, so it skips
# before a database is set up.
TOOL_DEPENDENT_TESTS = [
    ("tests/scale/test_pgbouncer_smoke.py", "pgbouncer", "apt-get install pgbouncer"),
    (
        "tests/operations/test_rate_limits.py::test_both_limits_with_redis_shared_by_two_app_instances",
        "redis-server",
        "apt-get install redis-server",
    ),
]
TOOLS = [("no-such-tool-7f3a", "apt-get install no-such-tool-7f3a")] + [
    (tool, install) for _, tool, install in TOOL_DEPENDENT_TESTS
]


def _pytest_without_the_tools(workdir: Path, require: str | None) -> tuple[int, str, set[str]]:
    """pytest on the bogus test and every tool-dependent file with their tools hidden: its exit
    code, its output and the outcomes its closing line counts ("skipped", "failed", "error")."""
    (workdir / "hide_tools.py").write_text(HIDE_TOOLS_PLUGIN)
    (workdir / "test_needs_a_tool.py").write_text(BOGUS_TOOL_TEST)
    environ = {key: value for key, value in os.environ.items() if key != REQUIRE_VARIABLE}
    if require is not None:
        environ[REQUIRE_VARIABLE] = require
    environ["PYTHONPATH"] = os.pathsep.join([str(workdir), str(PROJECT_ROOT)])
    environ["HIDDEN_TOOLS"] = ",".join(tool for _, tool, _ in TOOL_DEPENDENT_TESTS)
    # Its own temporary root: a pytest session that makes one takes the group and other bits off
    # it, which would lock the embedded PostgreSQL's user out of this session's directories.
    environ["PYTEST_DEBUG_TEMPROOT"] = str(workdir)
    # Only the plugins these tests need: every installed one (schemathesis, hypothesis) would
    # double the start-up.
    environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    plugins = ["-p", "no:cacheprovider", "-p", "pytest_asyncio.plugin", "-p", "pytest_timeout"]
    plugins += ["-p", "hide_tools"]
    config = ["-c", str(PROJECT_ROOT / "pyproject.toml"), "--rootdir", str(PROJECT_ROOT)]
    files = [str(workdir / "test_needs_a_tool.py"), *(file for file, _, _ in TOOL_DEPENDENT_TESTS)]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-rsfE", *plugins, *config, *files],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    closing_line = output.strip().splitlines()[-1]
    return (
        result.returncode,
        output,
        set(re.findall(r"\d+ (passed|failed|skipped|errors?|xfailed|xpassed)", closing_line)),
    )


def test_missing_tools_skip_naming_the_tool_and_its_install_command(tmp_path: Path) -> None:
    code, output, outcomes = _pytest_without_the_tools(tmp_path, None)
    assert code == 0, output
    assert outcomes == {"skipped"}, output
    for tool, install in TOOLS:
        assert f"{tool} is not installed ({install}); .ci/run installs it" in output, output


def test_missing_tools_fail_under_require_system_tools(tmp_path: Path) -> None:
    code, output, outcomes = _pytest_without_the_tools(tmp_path, "1")
    assert code == 1, output
    assert outcomes, output
    assert outcomes <= {"failed", "error", "errors"}, output
    for tool, install in TOOLS:
        reason = f"{tool} is not installed ({install}); .ci/run installs it, and {REQUIRE_VARIABLE} is set"
        assert reason in output, output
