"""yoyo migrations: plain SQL files under `migrations/`, applied under yoyo's lock."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from yoyo import get_backend, read_migrations
from yoyo.backends import DatabaseBackend
from yoyo.migrations import MigrationList

from service.db.paths import MIGRATIONS_DIR

LOCK_TIMEOUT_SECONDS = 120


def yoyo_url(database_url: str) -> str:
    """yoyo connects with psycopg 3; asyncpg-style DSNs only differ by scheme."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def _name_the_migrator() -> None:
    """yoyo logs the OS user with each migration, inside the migration's transaction. Under a uid
    with no passwd entry (a container run as an arbitrary user) that lookup fails and every
    migration rolls back, so such a process is named by its uid, through LOGNAME, which yoyo reads first."""
    try:
        getpass.getuser()
    except (KeyError, OSError):
        os.environ["LOGNAME"] = f"uid-{os.getuid()}"


@contextmanager
def _backend(database_url: str) -> Iterator[DatabaseBackend]:
    _name_the_migrator()
    backend = get_backend(yoyo_url(database_url))
    # psycopg prepares a statement on the server from its sixth run (a waiting migrator retries its
    # lock insert every half second). Through a transaction pooler the next run may land on a
    # server connection that lacks that statement, or already has one of its name, and fail.
    backend.connection.prepare_threshold = None
    try:
        yield backend
    finally:
        backend.connection.close()


def migration_ids() -> frozenset[str]:
    """The id of every migration this version of the code ships (a file name without `.sql`)."""
    return frozenset(
        path.name.removesuffix(".sql")
        for path in MIGRATIONS_DIR.glob("*.sql")
        if not path.name.endswith(".rollback.sql")
    )


def _all() -> MigrationList:
    return read_migrations(str(MIGRATIONS_DIR))


def apply_pending(database_url: str) -> list[str]:
    """Apply every pending migration; return their ids. Safe to call from many processes."""
    with _backend(database_url) as backend, backend.lock(timeout=LOCK_TIMEOUT_SECONDS):
        pending = backend.to_apply(_all())
        backend.apply_migrations(pending)
        return [migration.id for migration in pending]


def rollback(database_url: str, count: int) -> list[str]:
    """Roll back the `count` most recently applied migrations; return their ids."""
    with _backend(database_url) as backend, backend.lock(timeout=LOCK_TIMEOUT_SECONDS):
        applied = backend.to_rollback(_all())
        chosen = applied[:count]
        backend.rollback_migrations(chosen)
        return [migration.id for migration in chosen]


def status(database_url: str) -> list[tuple[str, bool]]:
    """Every migration id with whether it is applied."""
    with _backend(database_url) as backend:
        migrations = _all()
        applied = {m.id for m in backend.to_rollback(migrations)}
        return [(m.id, m.id in applied) for m in migrations]
