"""Embedded server, migrations (yoyo and plain psql) and the SQL files against the real schema."""

import subprocess
from pathlib import Path

import asyncpg
import psycopg
import pytest

from service import migrations
from service.db import all_sql_files, load_sql
from service.embedded import EmbeddedPostgres, _bin_dir

MIGRATIONS = sorted(
    p for p in migrations.MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql")
)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows if "yoyo" not in r[0]}


def test_embedded_server_starts_is_reused_and_stops(tmp_path: Path) -> None:
    first = EmbeddedPostgres(tmp_path)
    url = first.start()
    assert first.started_here
    second = EmbeddedPostgres(tmp_path)
    assert second.start() == url
    assert not second.started_here
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0] >= 180000
    first.stop_if_started_here()
    assert first.running_port() is None
    # Data survives a restart.
    third = EmbeddedPostgres(tmp_path)
    url = third.start()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int)")
    third.stop()
    url = third.start()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone()[0] == 0
    third.stop()


def test_migrations_apply_roll_back_and_reapply(scratch_url: str) -> None:
    applied = migrations.apply_pending(scratch_url)
    assert applied == [p.name.removesuffix(".sql") for p in MIGRATIONS]
    assert "users" in _tables(scratch_url)
    assert migrations.apply_pending(scratch_url) == []
    assert all(done for _, done in migrations.status(scratch_url))

    rolled = migrations.rollback(scratch_url, len(applied))
    assert rolled == list(reversed(applied))
    assert _tables(scratch_url) == set()
    assert not any(done for _, done in migrations.status(scratch_url))

    assert migrations.apply_pending(scratch_url) == applied
    assert migrations.rollback(scratch_url, 1) == applied[-1:]
    assert migrations.apply_pending(scratch_url) == applied[-1:]


def test_migration_files_apply_with_plain_psql(scratch_url: str, database_url: str) -> None:
    psql = str(_bin_dir() / "psql")
    for path in MIGRATIONS:
        subprocess.run([psql, scratch_url, "-v", "ON_ERROR_STOP=1", "-q", "-f", str(path)], check=True)
    assert _tables(scratch_url) == _tables(database_url)
    for path in reversed(MIGRATIONS):
        rollback = path.with_name(path.name.replace(".sql", ".rollback.sql"))
        subprocess.run([psql, scratch_url, "-v", "ON_ERROR_STOP=1", "-q", "-f", str(rollback)], check=True)
    assert _tables(scratch_url) == set()


def test_every_migration_has_a_rollback() -> None:
    for path in MIGRATIONS:
        assert path.with_name(path.name.replace(".sql", ".rollback.sql")).is_file(), path.name


@pytest.mark.parametrize("name", all_sql_files())
async def test_every_sql_file_prepares_against_the_schema(database_url: str, name: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.prepare(load_sql(name))
    finally:
        await connection.close()
