"""Embedded server, migrations (yoyo and plain psql) and the SQL files against the real schema."""

import asyncio
import os
import pwd
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest

from service.db import migrations
from service.db.embedded import SYSTEM_USER, EmbeddedPostgres, _bin_dir
from service.db.pool import in_transaction
from service.db.sql import all_sql_files, load_sql
from tests.system_tools import require_tool

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


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"postgres@{parts.hostname}:{parts.port}"))


def test_the_embedded_server_requires_its_password_and_db_url_prints_it(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path)
    url = server.start()
    try:
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(_without_password(url)).close()

        psql = require_tool("psql", "apt-get install postgresql-client")
        environ = {**os.environ, "DATA_DIR": str(tmp_path), "ENVIRONMENT": "development"}
        environ.pop("DATABASE_URL", None)
        printed = subprocess.run(
            [sys.executable, "-m", "service.cli", "db-url"],
            env=environ,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.strip()
        assert printed == url
        answer = subprocess.run(
            [psql, printed, "-Atc", "SELECT current_user"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert answer.stdout.strip() == "postgres"
    finally:
        server.stop()

    # A data dir from before passwords (it trusted every local connection) is given one on start.
    (server.pgdata / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    server.password_file.unlink()
    legacy = EmbeddedPostgres(tmp_path)
    migrated = legacy.start()
    try:
        assert migrated != url
        with psycopg.connect(migrated) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(_without_password(migrated)).close()
    finally:
        legacy.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root process hands the cluster to a server user")
def test_as_root_the_data_dir_stays_private_to_its_owner(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    ancestors = [private, *private.parents]
    modes = {directory: stat.S_IMODE(directory.stat().st_mode) for directory in ancestors}
    server = EmbeddedPostgres(private / "data")
    server.start()
    try:
        after = {directory: stat.S_IMODE(directory.stat().st_mode) for directory in ancestors}
        # No directory became readable or passable by every user; the server's own user got
        # passage through `private` and nothing more (the group bits now show the ACL's mask).
        assert {d: m & 0o007 for d, m in after.items()} == {d: m & 0o007 for d, m in modes.items()}
        assert after[private] & 0o070 == 0o010
        owner = pwd.getpwuid(server.pgdata.stat().st_uid).pw_name
        assert owner == SYSTEM_USER
        assert stat.S_IMODE(server.pgdata.stat().st_mode) == 0o700
        server.stop()
        # A chmod that clears the group bits (pytest's on its temporary root) clears the ACL's
        # mask, and with it the passage; the next start grants it again.
        os.chmod(private, 0o700)
        server.start()
        with psycopg.connect(server.url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
