"""Embedded server, migrations (yoyo and plain psql) and the SQL files against the real schema."""

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import psycopg
import pytest

from service import migrations
from service.db import all_sql_files, in_transaction, load_sql
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


async def test_a_deadlocked_transaction_is_run_again(scratch_url: str) -> None:
    """Two transactions that lock two rows in opposite orders: PostgreSQL aborts one with a
    deadlock, `in_transaction` runs it again, and both commit."""
    setup = await asyncpg.connect(scratch_url)
    await setup.execute(
        "CREATE TABLE probe (id int PRIMARY KEY, n int NOT NULL); INSERT INTO probe VALUES (1, 0), (2, 0)"
    )
    await setup.close()
    pool = await asyncpg.create_pool(scratch_url, min_size=2, max_size=2)
    both_hold_one = asyncio.Barrier(2)
    runs: list[str] = []

    def locking(first: int, second: int) -> Callable[[asyncpg.Connection], Awaitable[int]]:
        async def work(connection: asyncpg.Connection) -> int:
            runs.append(f"{first}->{second}")
            await connection.execute("UPDATE probe SET n = n + 1 WHERE id = $1", first)
            if len(runs) <= 2:  # the first run of each: make sure both hold a row before going on
                await both_hold_one.wait()
            await connection.execute("UPDATE probe SET n = n + 1 WHERE id = $1", second)
            return first

        return work

    try:
        done = await asyncio.gather(in_transaction(pool, locking(1, 2)), in_transaction(pool, locking(2, 1)))
        assert sorted(done) == [1, 2]
        assert len(runs) == 3, runs  # one of the two ran twice
        assert await pool.fetchval("SELECT sum(n) FROM probe") == 4
    finally:
        await pool.close()
