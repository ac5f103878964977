"""The retention policy: `service prune`, its lock across pruners, and the server's own pruning."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar

from service.app import create_app
from service.db.pool import create_pool
from service.db.sql import SQL_ROOT, load_sql
from service.retention.prune import BATCH_SIZE, RULES, Rule, prune_periodically
from service.settings import SettingsError, load_settings
from tests import reaper
from tests.conftest import make_settings, running
from tests.processes import service_environment

DEADLINE_SECONDS = 60


async def _seed(db: asyncpg.Connection) -> uuid.UUID:
    """Rows on both sides of every rule; the names say which side."""
    user_id: uuid.UUID = await db.fetchval(
        "INSERT INTO users (email) VALUES ('ada@example.com') RETURNING id"
    )
    await db.execute(
        """
        INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at, revoked_at)
        SELECT token_hash::bytea, gen_random_uuid(), $1, now() - issued_ago, now() + ends_in, revoked_at
        FROM (VALUES ('ended-spent', '31 days'::interval, '-1 day'::interval, now()),
                     ('ended-live', '31 days', '-1 second', NULL),
                     ('live', '0', '30 days', NULL),
                     ('spent-in-a-live-family', '0', '30 days', now())
        ) AS rows (token_hash, issued_ago, ends_in, revoked_at)
        """,
        user_id,
    )
    await db.execute(
        """
        INSERT INTO mfa_challenges (token_hash, user_id, expires_at)
        VALUES ('expired-challenge'::bytea, $1, now() - interval '1 second'),
               ('open-challenge'::bytea, $1, now() + interval '5 minutes')
        """,
        user_id,
    )
    await db.execute(
        """
        INSERT INTO revoked_access_tokens (jti, user_id, expires_at)
        VALUES (gen_random_uuid(), $1, now() - interval '1 hour'),
               (gen_random_uuid(), $1, now() + interval '10 minutes')
        """,
        user_id,
    )
    await db.execute(
        """
        INSERT INTO login_failures (email, failures, last_failed_at, locked_until)
        VALUES ('stale@example.com', 3, now() - interval '1 hour', NULL),
               ('recent@example.com', 2, now() - interval '1 minute', NULL),
               ('still-locked@example.com', 5, now() - interval '1 hour', now() + interval '5 minutes'),
               ('lock-expired@example.com', 5, now() - interval '1 hour', now() - interval '30 minutes')
        """
    )
    await db.execute(
        """
        INSERT INTO audit_events (at, action) SELECT now() - interval '400 days', 'auth.login'
        FROM generate_series(1, $1);
        """,
        BATCH_SIZE * 2 + 5,
    )
    await db.execute(
        "INSERT INTO audit_events (at, action) VALUES (now() - interval '364 days', 'auth.logout')"
    )
    await db.execute(
        """
        INSERT INTO scans (user_id, data, source, created_at)
        VALUES ($1, '[]', 'model', now() - interval '40 days'), ($1, '[]', 'model', now())
        """,
        user_id,
    )
    await db.execute(
        """
        INSERT INTO mail_messages
            (kind, recipient, subject, text_body, html_body, status, created_at, sent_at)
        SELECT kind, 'ada@example.com', kind, '', '', status, now() - created_ago, now() - sent_ago
        FROM (VALUES ('sent-long-ago', 'sent', '40 days'::interval, '40 days'::interval),
                     ('sent-recently', 'sent', '40 days', '29 days'),
                     ('pending-for-long', 'pending', '40 days', NULL),
                     ('dead-long-ago', 'dead', '40 days', NULL)
        ) AS rows (kind, status, created_ago, sent_ago)
        """
    )
    await db.execute(
        """
        INSERT INTO pgqueuer_log (created, job_id, status, priority, entrypoint)
        VALUES (now() - interval '31 days', 1, 'picked', 0, 'deliver_mail'),
               (now() - interval '31 days', 1, 'successful', 0, 'deliver_mail'),
               (now() - interval '29 days', 2, 'successful', 0, 'deliver_mail')
        """
    )
    await db.execute(
        """
        INSERT INTO account_tokens (token_hash, user_id, purpose, email, expires_at, used_at)
        SELECT token_hash::bytea, $1, purpose, 'ada@example.com', now() + ends_in, now() - used_ago
        FROM (VALUES ('spent', 'verify_email', '20 hours'::interval, '1 minute'::interval),
                     ('expired', 'reset_password', '-1 second', NULL),
                     ('valid', 'reset_password', '59 minutes', NULL),
                     ('valid-change', 'change_email', '1 day', NULL)
        ) AS rows (token_hash, purpose, ends_in, used_ago)
        """,
        user_id,
    )
    await db.execute(
        """
        INSERT INTO account_mail_counters (purpose, email, window_start, sent)
        VALUES ('verify_email', 'stale@example.com', now() - interval '61 minutes', 3),
               ('verify_email', 'current@example.com', now() - interval '59 minutes', 2)
        """
    )
    return user_id


def _prune(database_url: str, workdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "prune"],
        env=service_environment(database_url, workdir, **env),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _start_prune(database_url: str, workdir: Path, **env: str) -> subprocess.Popen[str]:
    return reaper.popen(
        [sys.executable, "-m", "service.cli", "prune"],
        env=service_environment(database_url, workdir, **env),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def _remaining(db: asyncpg.Connection) -> dict[str, object]:
    return {
        "refresh_tokens": sorted(
            bytes(row[0]).decode() for row in await db.fetch("SELECT token_hash FROM refresh_tokens")
        ),
        "revoked_access_tokens": await db.fetchval("SELECT count(*) FROM revoked_access_tokens"),
        "login_failures": sorted(row[0] for row in await db.fetch("SELECT email FROM login_failures")),
        "audit_events": await db.fetchval("SELECT count(*) FROM audit_events"),
        "scans": await db.fetchval("SELECT count(*) FROM scans"),
        "mfa_challenges": await db.fetchval("SELECT count(*) FROM mfa_challenges"),
        "mail_messages": sorted(row[0] for row in await db.fetch("SELECT kind FROM mail_messages")),
        "pgqueuer_log": await db.fetchval("SELECT count(*) FROM pgqueuer_log"),
        "account_tokens": sorted(
            bytes(row[0]).decode() for row in await db.fetch("SELECT token_hash FROM account_tokens")
        ),
        "account_mail_counters": [
            row[0] for row in await db.fetch("SELECT email FROM account_mail_counters")
        ],
    }


async def test_service_prune_applies_the_policy_and_says_what_it_removed(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await _seed(db)
    result = await asyncio.to_thread(_prune, database_url, tmp_path, SCAN_RETENTION_DAYS="30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "refresh_tokens: removed 2",
        "revoked_access_tokens: removed 1",
        "login_failures: removed 2",
        f"audit_events: removed {BATCH_SIZE * 2 + 5}",
        "scans: removed 1",
        "mfa_challenges: removed 1",
        "mail_messages: removed 1",
        "pgqueuer_log: removed 2",
        "account_tokens: removed 2",
        "account_mail_counters: removed 1",
    ]
    assert await _remaining(db) == {
        "refresh_tokens": ["live", "spent-in-a-live-family"],
        "revoked_access_tokens": 1,
        "login_failures": ["recent@example.com", "still-locked@example.com"],
        "audit_events": 1,
        "scans": 1,
        "mfa_challenges": 1,
        "mail_messages": ["dead-long-ago", "pending-for-long", "sent-recently"],
        "pgqueuer_log": 1,
        "account_tokens": ["valid", "valid-change"],
        "account_mail_counters": ["current@example.com"],
    }
    again = await asyncio.to_thread(_prune, database_url, tmp_path, SCAN_RETENTION_DAYS="30")
    assert again.returncode == 0
    assert all(line.endswith("removed 0") for line in again.stdout.splitlines())


async def test_audit_events_scans_mails_and_the_job_log_can_be_kept_forever(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await _seed(db)
    result = await asyncio.to_thread(
        _prune,
        database_url,
        tmp_path,
        AUDIT_RETENTION_DAYS="0",
        MAIL_RETENTION_DAYS="0",
        JOB_LOG_RETENTION_DAYS="0",
    )
    assert result.returncode == 0, result.stderr
    for table in ("audit_events", "scans", "mail_messages", "pgqueuer_log"):
        assert f"{table}: kept (no retention set)" in result.stdout.splitlines()
    remaining = await _remaining(db)
    assert (remaining["audit_events"], remaining["scans"]) == (BATCH_SIZE * 2 + 6, 2)
    assert (len(remaining["mail_messages"]), remaining["pgqueuer_log"]) == (4, 3)  # type: ignore[arg-type]


async def test_sent_mails_go_in_batches_and_a_shorter_retention_keeps_only_newer_ones(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await db.execute(
        """
        INSERT INTO mail_messages (kind, recipient, subject, text_body, html_body, status, sent_at)
        SELECT 'old', 'ada@example.com', 's', '', '', 'sent', now() - interval '8 days'
        FROM generate_series(1, $1)
        """,
        BATCH_SIZE * 2 + 3,
    )
    await db.execute(
        """
        INSERT INTO mail_messages (kind, recipient, subject, text_body, html_body, status, sent_at)
        VALUES ('newer', 'ada@example.com', 's', '', '', 'sent', now() - interval '6 days'),
               ('waiting', 'ada@example.com', 's', '', '', 'pending', NULL)
        """
    )
    result = await asyncio.to_thread(_prune, database_url, tmp_path, MAIL_RETENTION_DAYS="7")
    assert result.returncode == 0, result.stderr
    assert f"mail_messages: removed {BATCH_SIZE * 2 + 3}" in result.stdout.splitlines()
    assert (await _remaining(db))["mail_messages"] == ["newer", "waiting"]


def test_every_retention_delete_has_its_rule_and_a_rule_needs_its_file() -> None:
    """The rules table is the one list of retention deletes: a file without a rule would never
    run, a rule without a file fails at import."""
    files = sorted(path.stem for path in (SQL_ROOT / "retention").glob("delete_*.sql"))
    assert sorted(rule.query for rule in RULES) == files
    with pytest.raises(ValueError, match="no retention query delete_nothing"):
        Rule("nothing", "delete_nothing", lambda settings: ())


def test_service_prune_says_so_when_the_database_is_down(tmp_path: Path) -> None:
    result = _prune("postgresql://postgres@127.0.0.1:9/unreachable", tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("prune: the database failed:"), result.stderr
    assert "Traceback" not in result.stderr


def test_the_retention_settings_default_to_the_contract_and_refuse_nonsense(tmp_path: Path) -> None:
    settings = load_settings({"DATA_DIR": str(tmp_path), "JWT_SECRET": "s" * 32}, env_file=tmp_path / ".env")
    assert (settings.audit_retention_days, settings.scan_retention_days) == (365, None)
    assert settings.prune_interval_minutes == 60
    assert (settings.mail_retention_days, settings.job_log_retention_days) == (30, 30)
    for variable in (
        "AUDIT_RETENTION_DAYS",
        "SCAN_RETENTION_DAYS",
        "MAIL_RETENTION_DAYS",
        "JOB_LOG_RETENTION_DAYS",
        "PRUNE_INTERVAL_MINUTES",
    ):
        with pytest.raises(SettingsError, match=variable):
            make_settings("postgresql://127.0.0.1:9/unused", tmp_path, **{variable: "-1"})


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


async def test_of_two_concurrent_pruners_one_holds_the_lock_and_the_other_stands_aside(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await _seed(db)
    blocker = await asyncpg.connect(database_url)
    try:
        # Hold the first pruner inside its run (it waits for the scans table) so the second
        # one certainly starts while the first holds the retention lock.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE scans IN ACCESS EXCLUSIVE MODE")
        first = _start_prune(database_url, tmp_path, SCAN_RETENTION_DAYS="30")

        async def first_waits_on_scans() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'scans'::regclass"
                )
            )

        await _until(first_waits_on_scans, "the first pruner waits inside its run")
        # Production skips the migration check, so the second starts quickly: the first waits
        # within its statement timeout.
        second = await asyncio.to_thread(
            _prune, database_url, tmp_path, SCAN_RETENTION_DAYS="30", ENVIRONMENT="production"
        )
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip() == "another pruner holds the retention lock; nothing removed"
        await transaction.rollback()
    finally:
        await blocker.close()
    output, _ = await asyncio.to_thread(first.communicate, timeout=120)
    assert first.returncode == 0, output
    assert "scans: removed 1" in output.splitlines()
    assert (await _remaining(db))["scans"] == 1


async def test_a_pruner_stands_aside_while_another_holds_the_lock(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await _seed(db)
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            assert await holder.fetchval(load_sql("retention/try_prune_lock"))
            result = await asyncio.to_thread(_prune, database_url, tmp_path)
        assert result.returncode == 0
        assert "nothing removed" in result.stdout
        assert (await _remaining(db))["audit_events"] == BATCH_SIZE * 2 + 6
    finally:
        await holder.close()
    assert "audit_events: removed" in (await asyncio.to_thread(_prune, database_url, tmp_path)).stdout


async def test_the_server_prunes_on_its_own_at_start_and_every_interval(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await _seed(db)
    app: Litestar = create_app(make_settings(database_url, tmp_path, PRUNE_INTERVAL_MINUTES="60"))
    async with running(app):

        async def old_events_gone() -> bool:
            return await db.fetchval("SELECT count(*) FROM audit_events") == 1

        await _until(old_events_gone, "the server pruned the old audit events")
    assert (await _remaining(db))["refresh_tokens"] == ["live", "spent-in-a-live-family"]


async def test_a_failed_prune_is_logged_and_retried_at_the_next_interval(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    await _seed(db)
    settings = make_settings(database_url, tmp_path)
    pool = await create_pool(settings, database_url)
    await db.execute("ALTER TABLE login_failures RENAME TO login_failures_elsewhere")
    renamed = True
    caplog.set_level(logging.INFO, logger="service.retention")
    task = asyncio.create_task(prune_periodically(pool, database_url, settings, interval_seconds=0.05))
    try:

        async def logged(text: str) -> bool:
            return any(text in record.getMessage() for record in caplog.records)

        await _until(lambda: logged("retention prune failed"), "a failure is logged")
        assert not task.done(), "the failure did not end the loop"
        await db.execute("ALTER TABLE login_failures_elsewhere RENAME TO login_failures")
        renamed = False
        await _until(lambda: logged("retention prune removed"), "the next interval prunes")
    finally:
        task.cancel()
        if renamed:
            await db.execute("ALTER TABLE login_failures_elsewhere RENAME TO login_failures")
        await pool.close()
    line = next(r.getMessage() for r in caplog.records if "retention prune removed" in r.getMessage())
    # The failed runs got as far as the table that was away: what they removed stays removed.
    assert line == (
        "retention prune removed refresh_tokens=0 revoked_access_tokens=0 login_failures=2 "
        f"audit_events={BATCH_SIZE * 2 + 5} scans=kept mfa_challenges=1 mail_messages=1 pgqueuer_log=2 "
        "account_tokens=2 account_mail_counters=1"
    )
