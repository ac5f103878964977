"""Where the service's SQL files and migrations are, found through the package itself.

In a checkout (and an editable install) they are `sql/` and `migrations/` at the repository's
root, beside `service/`. A built wheel carries them inside the package, as `service/_sql` and
`service/_migrations` (pyproject.toml's wheel `sources` mapping), so an installed service finds them
wherever it runs from.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # service/
CHECKOUT_ROOT = PACKAGE_DIR.parent


def _shipped(name: str) -> Path:
    installed = PACKAGE_DIR / f"_{name}"
    return installed if installed.is_dir() else CHECKOUT_ROOT / name


SQL_DIR = _shipped("sql")
MIGRATIONS_DIR = _shipped("migrations")
# A checkout keeps its development data (embedded PostgreSQL, generated secret) at its root; an
# installed service keeps it in the directory it was started from, unless DATA_DIR says otherwise.
IS_CHECKOUT = (CHECKOUT_ROOT / "pyproject.toml").is_file() and (CHECKOUT_ROOT / "sql").is_dir()
