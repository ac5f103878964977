"""The pre-commit hooks (seed 003) run exactly .ci/run's lint, format and type checks, through
`uv run`, so their ruff and mypy are the versions uv.lock pins."""

from __future__ import annotations

import re

import yaml

from service.settings import PROJECT_ROOT

CHECKS_IN_CI = re.compile(r"^uv run (ruff|mypy)\b")


def test_hooks_are_the_checks_ci_runs_with_the_locked_tools() -> None:
    config = yaml.safe_load((PROJECT_ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    for hook in hooks:
        assert hook["language"] == "system", hook
        assert hook["pass_filenames"] is False, "CI checks the whole tree, so do the hooks"
    ci_lines = (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
    ci_checks = [line.strip() for line in ci_lines if CHECKS_IN_CI.match(line.strip())]
    assert sorted(hook["entry"] for hook in hooks) == sorted(ci_checks)
