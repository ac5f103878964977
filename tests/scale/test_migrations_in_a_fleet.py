"""Migrations in a fleet: concurrent migrators apply each migration once; production replicas never
migrate on their own and stay unready until the release step has run; older replicas stay ready."""

from pathlib import Path

import httpx
import psycopg

from service.app import create_app
from service.db import migrations
from service.db.migrations import migration_ids
from tests.conftest import make_settings, running
from tests.processes import run_service, serve, service_environment


def _applied_once_each(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' GROUP BY migration_id"
        ).fetchall()
    return dict(rows)


def _migrate_at_once(url: str, workdir: Path, count: int) -> None:
    """Start `count` migrators together; all exit 0, and each migration is reported and logged once."""
    environ = service_environment(url, workdir)
    migrators = [run_service(["migrate"], workdir, f"migrate-{n}.log", environ) for n in range(count)]
    exits = [m.process.wait(timeout=300) for m in migrators]
    assert exits == [0] * count, [m.output() for m in migrators]
    reported = [line.removeprefix("applied ") for m in migrators for line in m.output().splitlines()]
    applied_by_any = [line for line in reported if line != "nothing to apply"]
    assert sorted(applied_by_any) == sorted(migration_ids()), "each one reported once, by one process"


def test_two_migrators_started_together_apply_each_migration_once(scratch_url: str, tmp_path: Path) -> None:
    _migrate_at_once(scratch_url, tmp_path, 2)
    assert _applied_once_each(scratch_url) == dict.fromkeys(migration_ids(), 1)


def test_migrators_through_pgbouncer_in_transaction_mode_apply_each_migration_once(
    scratch_url: str, pgbouncer_url: str, tmp_path: Path
) -> None:
    """Waiting migrators retry their lock insert every half second. Were psycopg to prepare it on the
    server, a retry landing on another server connection would fail, and a migrator failing while it
    holds the lock would leave the others waiting until they time out."""
    through_pgbouncer = f"{pgbouncer_url.rsplit('/', 1)[0]}/{scratch_url.rsplit('/', 1)[1]}"
    _migrate_at_once(through_pgbouncer, tmp_path, 3)
    assert _applied_once_each(scratch_url) == dict.fromkeys(migration_ids(), 1)


def test_production_serve_leaves_migrations_to_the_release_step(scratch_url: str, tmp_path: Path) -> None:
    with serve(scratch_url, tmp_path, migrate=None, ENVIRONMENT="production") as server:
        with psycopg.connect(scratch_url) as conn:
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,), "serve did not migrate"
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        unready = httpx.get(f"{server.url}/health/ready", timeout=5)
        assert unready.status_code == 503
        assert unready.headers["retry-after"]
        assert "service migrate" in unready.json()["detail"]

        environ = service_environment(scratch_url, tmp_path)
        release = run_service(["migrate"], tmp_path, "release.log", environ)
        assert release.process.wait(timeout=120) == 0, release.output()
        ready = httpx.get(f"{server.url}/health/ready", timeout=5)
        assert ready.status_code == 200, "ready once migrated, without a restart"


async def test_replicas_of_the_previous_release_stay_ready_after_a_newer_migration(
    scratch_url: str, tmp_path: Path
) -> None:
    migrations.apply_pending(scratch_url)
    with psycopg.connect(scratch_url) as conn:
        conn.execute(
            "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc)"
            " VALUES ('next-release', '9999.next_release', now())"
        )
    app = create_app(make_settings(scratch_url, tmp_path))
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await http.get("/health/ready")).status_code == 200
