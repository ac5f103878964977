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
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import msgspec

from service.settings import Settings, SettingsError, load_settings

log = logging.getLogger("service.cli")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    from service.db import migrations
    from service.db.pool import resolve_database_url
    from service.observability.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    url, embedded = resolve_database_url(settings)
    try:
        migrate = args.migrate if args.migrate is not None else not settings.is_production
        if migrate:
            applied = migrations.apply_pending(url)
            if applied:
                log.info("applied migrations: %s", ", ".join(applied))
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
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    from service.db import migrations
    from service.db.pool import resolve_database_url

    settings = _settings()
    url, embedded = resolve_database_url(settings)
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


def cmd_create_admin(args: argparse.Namespace) -> int:
    from service.db import migrations
    from service.db.pool import resolve_database_url
    from service.users.create_admin import AdminSetupError, create_or_promote, read_password

    settings = _settings()
    url, embedded = resolve_database_url(settings)
    try:
        if not settings.is_production:
            migrations.apply_pending(url)
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
    finally:
        if embedded is not None:
            embedded.stop_if_started_here()
    print(outcome)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    import asyncpg
    import psycopg

    from service.db import migrations
    from service.db.pool import resolve_database_url
    from service.retention.prune import run_once

    settings = _settings()
    url, embedded = resolve_database_url(settings)
    try:
        if not settings.is_production:
            migrations.apply_pending(url)
        removed = asyncio.run(run_once(settings, url))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, psycopg.Error) as exc:
        print(f"prune: the database failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if embedded is not None:
            embedded.stop_if_started_here()
    if removed is None:
        print("another pruner holds the retention lock; nothing removed")
        return 0
    for table, count in removed.items():
        print(f"{table}: {'kept (no retention set)' if count is None else f'removed {count}'}")
    return 0


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


def cmd_demo_ai(args: argparse.Namespace) -> int:
    from service.integrations.ai_service import demo

    demo.serve(args.host, args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply pending migrations (development), then serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")), help="worker processes"
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
            "stale login failures, audit events older than AUDIT_RETENTION_DAYS and, when set, scans "
            "older than SCAN_RETENTION_DAYS; prints what it removed per table. Safe while serving and "
            "from several hosts at once: one pruner runs at a time, the others report so and exit 0."
        ),
    )
    prune.set_defaults(handler=cmd_prune)

    openapi = commands.add_parser("openapi", help="print the OpenAPI document")
    openapi.add_argument("-o", "--output", help="write to this file instead of stdout")
    openapi.set_defaults(handler=cmd_openapi)

    db_url = commands.add_parser("db-url", help="print the database URL in use")
    db_url.set_defaults(handler=cmd_db_url)

    demo_ai = commands.add_parser("demo-ai", help="run a local stand-in for the AI scan service")
    demo_ai.add_argument("--host", default="127.0.0.1")
    demo_ai.add_argument("--port", type=int, default=8082)
    demo_ai.set_defaults(handler=cmd_demo_ai)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
