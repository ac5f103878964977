"""`.env.example` (seed 002): every variable the service reads, with its default, and no other."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from service import settings as settings_module
from service.settings import PROJECT_ROOT, load_settings, read_env_file
from tests.conftest import TEST_JWT_SECRET

ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
README = PROJECT_ROOT / "README.md"


class _RecordingEnvironment(Mapping[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _variables_settings_reads() -> set[str]:
    environment = _RecordingEnvironment()
    settings_module._raw_values(environment)
    return environment.asked


def _readme_table_variables() -> set[str]:
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    first_cells = (line.split("|")[1] for line in section.splitlines() if line.startswith("| `"))
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


def test_env_example_sets_exactly_the_variables_settings_reads() -> None:
    read = _variables_settings_reads()
    assert len(read) > 20, "reading the settings' variables through _raw_values found too few"
    listed = set(read_env_file(ENV_EXAMPLE))
    assert listed == read, (
        f".env.example lacks {sorted(read - listed) or 'nothing'}; "
        f"it sets {sorted(listed - read) or 'nothing'} that service/settings.py does not read"
    )


def test_env_example_as_it_is_changes_no_default(tmp_path: Path) -> None:
    # The environment wins over the file: these two keep the development secret out of .data.
    environ = {"DATA_DIR": str(tmp_path), "JWT_SECRET": TEST_JWT_SECRET}
    from_example = load_settings(environ, env_file=ENV_EXAMPLE)
    defaults = load_settings(environ, env_file=tmp_path / "absent.env")
    assert from_example == defaults


def test_every_variable_of_the_readme_table_is_in_env_example_and_the_other_way_round() -> None:
    documented = _readme_table_variables()
    text = ENV_EXAMPLE.read_text()
    unmentioned = {name for name in documented if not re.search(rf"\b{name}\b", text)}
    assert not unmentioned, f".env.example lacks {sorted(unmentioned)}, from README's configuration table"
    undocumented = _variables_settings_reads() - documented
    assert not undocumented, f"README's configuration table lacks {sorted(undocumented)}"
