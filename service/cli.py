"""The `service` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import msgspec

from service.settings import Settings, SettingsError, load_env_file, load_settings

log = logging.getLogger("service.cli")

# `serve` started while its database was down applies pending migrations once it answers.
MIGRATE_RETRY_SECONDS = 2
MIGRATE_FAILED_RETRY_SECONDS = 30


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _database_url(settings: Settings) -> tuple[str, Any]:
    """The database to use (DATABASE_URL, or the embedded server), checked to answer: when
    DATABASE_URL cannot be reached, one line naming it and why, and exit 1."""
    from service.db.pool import DatabaseUnreachable, check_reachable, resolve_database_url

    url, embedded = resolve_database_url(settings)
    if embedded is None:
        try:
            check_reachable(url, "DATABASE_URL")
        except DatabaseUnreachable as exc:
            print(f"database error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
    return url, embedded


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _reachable_at_start(url: str, *, migrate_requested: bool) -> bool:
    """Whether DATABASE_URL answers now. `serve` (and `worker`) start either way: requests answer
    503 and jobs wait until the database is back (docs/reliability.md). Only an explicit
    --migrate, which promises the schema is migrated before anything is served, refuses to
    start: one line, exit 1."""
    from service.db.pool import DatabaseUnreachable, check_reachable

    try:
        check_reachable(url, "DATABASE_URL")
    except DatabaseUnreachable as exc:
        if migrate_requested:
            print(f"database error: {exc}; --migrate needs it to start", file=sys.stderr)
            raise SystemExit(1) from None
        log.warning("%s; starting anyway: requests answer 503 and jobs wait until it answers", exc)
        return False
    return True


def _migrate_once_reachable(url: str) -> None:
    """Apply pending migrations in a thread of the serving process as soon as the database answers
    (readiness says 503 until then). A daemon thread: a migration cut short by the process's exit
    rolls back (PostgreSQL's transactional DDL), though yoyo's lock row stays behind, as with any
    migrator killed mid-run (docs/deploying.md)."""
    from service.db import migrations
    from service.db.pool import DatabaseUnreachable, check_reachable

    def migrate() -> None:
        while True:
            try:
                check_reachable(url, "DATABASE_URL")
                applied = migrations.apply_pending(url)
            except DatabaseUnreachable:
                time.sleep(MIGRATE_RETRY_SECONDS)
                continue
            except Exception:  # a failing migration: readiness stays 503, and it is tried again
                log.exception(
                    "applying migrations failed; trying again in %d s", MIGRATE_FAILED_RETRY_SECONDS
                )
                time.sleep(MIGRATE_FAILED_RETRY_SECONDS)
                continue
            log.info("the database answers: applied migrations: %s", ", ".join(applied) or "none pending")
            return

    log.info("pending migrations are applied once the database answers")
    threading.Thread(target=migrate, name="migrate-once-reachable", daemon=True).start()


def cmd_serve(args: argparse.Namespace) -> int:
    from service.db import migrations
    from service.db.pool import resolve_database_url
    from service.observability.logs import configure_logging

    if args.reload and args.workers > 1:
        print(
            f"service serve: --reload runs a single worker; drop --workers {args.workers} "
            "(or WEB_CONCURRENCY) to use it",
            file=sys.stderr,
        )
        return 2
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    url, embedded = resolve_database_url(settings)
    try:
        migrate = args.migrate if args.migrate is not None else not settings.is_production
        reachable = embedded is not None or _reachable_at_start(url, migrate_requested=args.migrate is True)
        if migrate and reachable:
            applied = migrations.apply_pending(url)
            if applied:
                log.info("applied migrations: %s", ", ".join(applied))
        elif migrate:
            _migrate_once_reachable(url)
        # Workers inherit the resolved URL, so they share the one embedded server.
        os.environ["DATABASE_URL"] = url
        # uvicorn re-raises SIGTERM after its graceful shutdown; exit cleanly through `finally`.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        with _metrics_shared_by_workers(settings, args.workers):
            _run_uvicorn(args, settings)
    finally:
        if embedded is not None:
            embedded.stop_if_started_here()
    return 0


@contextlib.contextmanager
def _metrics_shared_by_workers(settings: Settings, workers: int) -> Iterator[None]:
    """With several workers, point prometheus_client at a fresh directory before they start.

    Each worker then writes its samples there, and whichever worker answers /metrics reports
    them all. An operator's own PROMETHEUS_MULTIPROC_DIR is used as it is.
    """
    if workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    directory = Path(settings.data_dir) / "prometheus" / f"serve-{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    try:
        yield
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(directory, ignore_errors=True)


def _reload_options(reload: bool) -> dict[str, Any]:
    """uvicorn's reloader (watchfiles), restarting the worker when the code, a SQL file or a
    migration changes (a new migration is applied by the next `service serve` or `service migrate`)."""
    if not reload:
        return {}
    from service.db.paths import MIGRATIONS_DIR, PACKAGE_DIR, SQL_DIR

    return {
        "reload": True,
        "reload_dirs": [str(PACKAGE_DIR), str(SQL_DIR), str(MIGRATIONS_DIR)],
        "reload_includes": ["*.py", "*.sql"],
    }


def _run_uvicorn(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from service.http.protocol import guarded_protocol

    uvicorn.run(
        "service.app:create_served_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        # httptools, with limits on request heads and connections (service/http/protocol.py).
        http=cast(Any, guarded_protocol(settings)),
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=30,
        **_reload_options(args.reload),
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    from service.db import migrations

    settings = _settings()
    url, embedded = _database_url(settings)
    try:
        if args.list:
            for migration_id, applied in migrations.status(url):
                print(f"[{'x' if applied else ' '}] {migration_id}")
        elif args.rollback:
            for migration_id in migrations.rollback(url, args.rollback):
                print(f"rolled back {migration_id}")
        else:
            newly_applied = migrations.apply_pending(url)
            print("\n".join(f"applied {m}" for m in newly_applied) or "nothing to apply")
    finally:
        if embedded is not None:
            embedded.stop_if_started_here()
    return 0


@contextlib.contextmanager
def _command_database(settings: Settings) -> Iterator[str]:
    """The database URL a one-off command works on: outside production, migrated first; an
    embedded server this started is stopped after."""
    from service.db import migrations
    from service.db.pool import resolve_database_url

    url, embedded = resolve_database_url(settings)
    try:
        if not settings.is_production:
            migrations.apply_pending(url)
        yield url
    finally:
        if embedded is not None:
            embedded.stop_if_started_here()


def cmd_create_admin(args: argparse.Namespace) -> int:
    from service.users.create_admin import AdminSetupError, create_or_promote, read_password

    settings = _settings()
    try:
        with _command_database(settings) as url:
            outcome = asyncio.run(
                create_or_promote(
                    settings,
                    url,
                    args.email,
                    lambda: read_password(os.environ),
                    promote_existing=args.promote_existing,
                    reset_password=args.reset_password,
                )
            )
    except AdminSetupError as exc:
        print(f"create-admin: {exc}", file=sys.stderr)
        return 2
    print(outcome)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    import asyncpg
    import psycopg

    from service.retention.prune import run_once

    settings = _settings()
    try:
        with _command_database(settings) as url:
            removed = asyncio.run(run_once(settings, url))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, psycopg.Error) as exc:
        print(f"prune: the database failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if removed is None:
        print("another pruner holds the retention lock; nothing removed")
        return 0
    for table, count in removed.items():
        print(f"{table}: {'kept (no retention set)' if count is None else f'removed {count}'}")
    return 0


def cmd_mfa_rotate(args: argparse.Namespace) -> int:
    import asyncpg
    import psycopg

    from service.settings import mfa_key_id
    from service.two_factor.rotation import run_once

    settings = _settings()
    try:
        with _command_database(settings) as url:
            done = asyncio.run(run_once(settings, url, args.batch_size))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, psycopg.Error) as exc:
        print(f"mfa-rotate: the database failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    current = mfa_key_id(settings.mfa_encryption_key) if settings.mfa_encryption_key else "development"
    print(
        f"two-factor secrets: {done.examined}; re-encrypted under key {current}: {done.reencrypted}; "
        f"already under it: {done.already_current}"
    )
    if done.changed_meanwhile:
        print(
            f"mfa-rotate: {done.changed_meanwhile} secrets kept changing while this ran; run it again",
            file=sys.stderr,
        )
    if done.undecryptable:
        print(
            f"mfa-rotate: {len(done.undecryptable)} secrets decrypt with none of the configured keys "
            "(MFA_ENCRYPTION_KEY, MFA_ENCRYPTION_OLD_KEYS); keep the old keys until they are found. "
            f"Users: {', '.join(str(user_id) for user_id in done.undecryptable[:20])}",
            file=sys.stderr,
        )
    return 0 if done.complete else 1


def cmd_openapi(args: argparse.Namespace) -> int:
    from service.app import create_app

    app = create_app(_settings())
    document = msgspec.json.format(msgspec.json.encode(app.openapi_schema.to_schema()), indent=2)
    if args.output:
        Path(args.output).write_bytes(document + b"\n")
    else:
        sys.stdout.write(document.decode() + "\n")
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    from service.db.pool import resolve_database_url

    url, embedded = resolve_database_url(_settings())
    if embedded is not None and embedded.started_here:
        print(
            f"started the embedded PostgreSQL ({embedded.pgdata}); it keeps running for psql",
            file=sys.stderr,
        )
    print(url)
    return 0


async def _work_until_stopped(settings: Settings, url: str) -> None:
    from service.app import background_worker
    from service.db.pool import create_pool
    from service.retention.prune import prune_periodically

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pool = await create_pool(settings, url)
    worker = background_worker(pool, settings, url)
    worker.start()
    interval = settings.prune_interval_minutes * 60
    pruner = asyncio.create_task(prune_periodically(pool, url, settings, interval)) if interval else None
    log.info("worker started: mail delivery%s", ", retention" if pruner else "")
    try:
        await stop.wait()
    finally:
        if pruner is not None:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
        await worker.stop()
        await pool.close()


def cmd_worker(args: argparse.Namespace) -> int:
    from service.db import migrations
    from service.db.pool import resolve_database_url
    from service.observability.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    url, embedded = resolve_database_url(settings)
    try:
        if not settings.is_production:
            if embedded is not None or _reachable_at_start(url, migrate_requested=False):
                migrations.apply_pending(url)
            else:
                _migrate_once_reachable(url)
        asyncio.run(_work_until_stopped(settings, url))
    finally:
        if embedded is not None:
            embedded.stop_if_started_here()
    return 0


def cmd_dev_mail(args: argparse.Namespace) -> int:
    from service.mail.dev_server import serve_forever

    with contextlib.suppress(KeyboardInterrupt):
        serve_forever(args.port)
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    from service.db.embedded import EmbeddedPostgres

    settings = _settings()
    embedded = EmbeddedPostgres(Path(settings.data_dir))
    if embedded.running_port() is None:
        print(f"the embedded PostgreSQL ({embedded.pgdata}) is not running")
        return 0
    embedded.stop()
    print(f"stopped the embedded PostgreSQL ({embedded.pgdata})")
    return 0


def cmd_demo_ai(args: argparse.Namespace) -> int:
    from service.integrations.ai_service import demo

    demo.serve(args.host, args.port)
    return 0


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 10000")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply pending migrations (development), then serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or "1"), help="worker processes"
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="development: restart when service/, sql/ or migrations/ change (one worker)",
    )
    serve.add_argument(
        "--migrate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="apply migrations before serving (default: yes in development, no in production)",
    )
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply, list or roll back migrations")
    migrate.add_argument("--list", action="store_true", help="list migrations and whether each is applied")
    migrate.add_argument("--rollback", type=int, metavar="N", help="roll back the N latest migrations")
    migrate.set_defaults(handler=cmd_migrate)

    create_admin = commands.add_parser(
        "create-admin",
        help="create a local administrator (or, with --promote-existing, promote an existing account)",
        description=(
            "Creates a local administrator. An existing local account with this email that is not an "
            "administrator is promoted (and reactivated) only with --promote-existing; without it the "
            "command refuses, since anyone may have registered the email. The password comes from "
            "SERVICE_ADMIN_PASSWORD, or is asked for twice without echo; an existing account keeps "
            "its password unless --reset-password is given."
        ),
    )
    create_admin.add_argument("email")
    create_admin.add_argument(
        "--promote-existing",
        action="store_true",
        help="promote the existing local account with this email, which you know to be yours",
    )
    create_admin.add_argument(
        "--reset-password",
        action="store_true",
        help="also give an existing account a new password, ending all of its sessions",
    )
    create_admin.set_defaults(handler=cmd_create_admin)

    prune = commands.add_parser(
        "prune",
        help="apply the retention policy now (expired token rows, stale login failures, old audit events)",
        description=(
            "Deletes, in batches, refresh-token rows of ended sessions, expired revoked access tokens, "
            "stale login failures, audit events older than AUDIT_RETENTION_DAYS, when set scans "
            "older than SCAN_RETENTION_DAYS, sent mails older than MAIL_RETENTION_DAYS, job log rows "
            "older than JOB_LOG_RETENTION_DAYS, spent or expired account links and ended mail "
            "counters; prints what it removed per table. Safe while serving and "
            "from several hosts at once: one pruner runs at a time, the others report so and exit 0."
        ),
    )
    prune.set_defaults(handler=cmd_prune)

    mfa_rotate = commands.add_parser(
        "mfa-rotate",
        help="re-encrypt every two-factor secret under MFA_ENCRYPTION_KEY (after a key rotation)",
        description=(
            "Reads every stored two-factor secret in batches and re-encrypts those made with a key "
            "of MFA_ENCRYPTION_OLD_KEYS (or before keys were named) under MFA_ENCRYPTION_KEY. "
            "Idempotent and safe while serving, also twice at once: a secret changed meanwhile is "
            "left as it was written. Exit 0 when every secret is under the current key (the old "
            "keys may go), 1 otherwise. docs/operations.md has the runbook."
        ),
    )
    mfa_rotate.add_argument(
        "--batch-size", type=_batch_size, default=500, help="secrets per UPDATE (default 500)"
    )
    mfa_rotate.set_defaults(handler=cmd_mfa_rotate)

    openapi = commands.add_parser("openapi", help="print the OpenAPI document")
    openapi.add_argument("-o", "--output", help="write to this file instead of stdout")
    openapi.set_defaults(handler=cmd_openapi)

    db_url = commands.add_parser("db-url", help="print the database URL in use")
    db_url.set_defaults(handler=cmd_db_url)

    worker = commands.add_parser(
        "worker",
        help="run background jobs (mail delivery, retention) in this process",
        description=(
            "Delivers the outbox's mails and runs password-reset requests, and applies the retention "
            "policy every PRUNE_INTERVAL_MINUTES, until SIGTERM. `service serve` does the same in each "
            "worker unless MAIL_WORKER=off; any number of these may run on any hosts."
        ),
    )
    worker.set_defaults(handler=cmd_worker)

    dev_mail = commands.add_parser("dev-mail", help="a local SMTP server that prints every mail it receives")
    dev_mail.add_argument("--port", type=int, default=1025)
    dev_mail.set_defaults(handler=cmd_dev_mail)

    db_stop = commands.add_parser(
        "db-stop",
        help="stop the embedded PostgreSQL under DATA_DIR (which db-url leaves running)",
        description=(
            "Stops the embedded PostgreSQL of DATA_DIR in fast mode (open sessions end, data is "
            "flushed), whoever started it; a server it serves stops too. Nothing to do when none runs."
        ),
    )
    db_stop.set_defaults(handler=cmd_db_stop)

    demo_ai = commands.add_parser("demo-ai", help="run a local stand-in for the AI scan service")
    demo_ai.add_argument("--host", default="127.0.0.1")
    demo_ai.add_argument("--port", type=int, default=8082)
    demo_ai.set_defaults(handler=cmd_demo_ai)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before anything reads the environment: WEB_CONCURRENCY (the parser's default), OTEL_*,
    # PROMETHEUS_MULTIPROC_DIR and the settings all see `.env`, under the real environment.
    load_env_file()
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except SettingsError as exc:  # found after start-up: no database and no embedded server
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
