"""Shared fixtures: one real PostgreSQL per test session, clean tables per test, the app in-process.

The database is the embedded PostgreSQL by default. With TEST_DATABASE_URL (for example the
machine's own server, postgresql://postgres@127.0.0.1:5432/postgres) a fresh database is
created there for the session and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
import psycopg
import pytest
import redis
from litestar import Litestar

from service.app import create_app
from service.db import migrations
from service.db.embedded import EmbeddedPostgres
from service.observability.logs import configure_logging
from service.observability.metrics import RequestMetrics
from service.security.caller_listener import CALLER_LISTENER_KEY, CallerListener
from service.security.rate_limit import RateLimiting
from service.security.tokens import issue_access_token
from service.settings import Settings, load_settings
from tests import harness, reaper
from tests.system_tools import require_tool

TEST_MFA_ENCRYPTION_KEY = "test-mfa-encryption-key-" + "m" * 32
TEST_JWT_SECRET = "test-secret-" + "x" * 40


# The run's safety net (tests/reaper.py, tests/harness.py): every process a test starts is stopped
# however the run ends, every test has a time limit, and tests that start processes are `slow`.
def pytest_configure(config: pytest.Config) -> None:
    reaper.start_run()
    reaper.install_handlers()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    harness.mark_slow_tests(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    with harness.HardDeadline(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Processes a test's body started (not its fixtures) are stopped when the body ends."""
    with reaper.stopped_afterwards():
        return (yield)


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    reaper.stop_everything()
    reaper.exit_within_bound(2)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every fixture's teardown: whatever is still running was left behind."""
    left = reaper.stop_everything()
    if left:
        session.config.get_terminal_writer().line(
            f"stopped {len(left)} process(es) that tests left running: {left}", yellow=True
        )


@pytest.fixture(scope="session", autouse=True)
def _temporary_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    """PostgreSQL servers under the session's temporary directory are stopped at the end."""
    reaper.watch_directory(tmp_path_factory.getbasetemp())


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        name = f"service_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(external, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = _with_database(external, name)
            migrations.apply_pending(url)
            yield url
        finally:
            with psycopg.connect(external, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    reaper.watch_directory(server.data_dir)
    url = server.start()
    try:
        migrations.apply_pending(url)
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free loopback port for the session, keeping nothing on disk."""
    from tests.processes import free_port  # tests.processes imports this module

    binary = require_tool("redis-server", "apt-get install redis-server")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    process = reaper.popen([*command, "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        with redis.Redis.from_url(url, socket_timeout=1) as client:
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    assert process.poll() is None, "redis-server exited during start-up"
                    assert time.monotonic() < deadline, "redis-server did not answer"
                    time.sleep(0.05)
        yield url
    finally:
        reaper.stop(process)


@pytest.fixture
def scratch_url(database_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped after the test."""
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(database_url, name)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def table_names(database_url: str) -> list[str]:
    """The schema's tables, each after every table whose foreign keys point at it."""
    with psycopg.connect(database_url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE '%yoyo%'"
            ).fetchall()
        ]
        references = conn.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
            " WHERE contype = 'f' AND conrelid <> confrelid"
        ).fetchall()
    ordered: list[str] = []
    while len(ordered) < len(tables):
        # A table goes once nothing left still points at it (a cycle is taken as it stands).
        left = [table for table in tables if table not in ordered]
        free = [t for t in left if not any(parent == t and child in left for child, parent in references)]
        ordered.extend(free or left)
    return ordered


@pytest.fixture(scope="session")
def emptying(database_url: str, table_names: list[str]) -> str:
    """Empties every table and restarts the identity columns, in one implicit transaction.

    DELETE, not TRUNCATE: on the tests' nearly empty tables TRUNCATE took 0.26-0.38 s a test and
    DELETE under 1 ms (2-core machine, load 11; TRUNCATE makes new files for every table and index).
    """
    with psycopg.connect(database_url) as conn:
        sequences = [
            row[0]
            for row in conn.execute(
                "SELECT pg_get_serial_sequence(format('%I', table_name), column_name)"
                " FROM information_schema.columns WHERE table_schema = 'public'"
                " AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')"
            ).fetchall()
            if row[0]
        ]
    deletes = [f"DELETE FROM {table};" for table in table_names]
    restarts = [f"SELECT setval('{sequence}', 1, false);" for sequence in sequences]
    return " ".join(deletes + restarts)


def settings_environ(database_url: str, data_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment the tests configure the service with."""
    environ = {
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "JWT_SECRET": TEST_JWT_SECRET,
        "DATA_DIR": str(data_dir),
        "DATABASE_POOL_MIN": "1",
        "DATABASE_POOL_MAX": "5",
        "LOG_LEVEL": "WARNING",
        "AI_SERVICE_URL": "http://127.0.0.1:9",
        "ARGON2_MEMORY_KIB": "8192",
        "ARGON2_TIME_COST": "1",
        # A test's rows (an expired token it made on purpose) are not pruned under it; the
        # retention tests turn pruning on.
        "PRUNE_INTERVAL_MINUTES": "0",
        # Mails stay in the outbox: tests/mail start a worker and a real SMTP server when they
        # need delivery. An address is set so that production settings load.
        "SMTP_URL": "smtp://127.0.0.1:9",
        "MAIL_WORKER": "off",
        # Production refuses to start without it (two-factor secrets are encrypted with it).
        "MFA_ENCRYPTION_KEY": TEST_MFA_ENCRYPTION_KEY,
    }
    environ.update(overrides)
    return environ


def make_settings(database_url: str, data_dir: Path, **overrides: str) -> Settings:
    return load_settings(
        settings_environ(database_url, data_dir, **overrides), env_file=data_dir / "absent.env"
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
async def db(database_url: str, emptying: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, with every table emptied first."""
    connection = await asyncpg.connect(database_url)
    if emptying:
        await connection.execute(emptying)
    try:
        yield connection
    finally:
        await connection.close()


_RUNNING: set[int] = set()  # the apps whose lifespan `running` has started and not yet ended


@asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[Litestar]:
    """Run the app's lifespan in a task of its own: pytest-asyncio sets fixtures up and tears
    them down in different tasks, which anyio's cancel scopes inside the lifespan refuse."""
    started = asyncio.Event()
    stop = asyncio.Event()

    async def lifespan() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    _RUNNING.add(id(app))
    task = asyncio.create_task(lifespan())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    try:
        if task.done():
            waiter.cancel()
            task.result()
        yield app
    finally:
        stop.set()
        try:
            await task
        finally:
            _RUNNING.discard(id(app))


# create_app registers about 440 route handlers (every /api route twice, with its /api/v1 twin),
# 0.2-0.6 s a call on a busy 2-core machine: more than everything else a typical in-process test
# does (tests/tasks and tests/users: 130 tests in 90 s with an app each, 11 s reusing one, load
# 5). So the `app` fixture (and `app_for`'s other callers) builds one
# app per distinct settings and gives later tests that app with its per-app state renewed
# (`_renewed`): the rate limiter's counters and clock, the caller cache and its listener, the
# request metrics, `app.state`, the logging set-up. Whatever a lifespan makes (pool, HTTP
# clients, key caches, workers) is new anyway: every test runs the lifespan afresh. Tests that
# change the app itself (register routes, hand it a tracer) call create_app. An app kept here
# holds about 2 MB; a new per-app object that keeps state between requests belongs in _RENEWABLE,
# with a `reset()` that gives it back the state its constructor gives.
_REUSABLE: dict[bytes, tuple[Litestar, dict[str, Any]]] = {}
_RENEWABLE = (RateLimiting, CallerListener, RequestMetrics)


def _renewable_parts(app: Litestar) -> dict[type, list[Any]]:
    """The objects of `_RENEWABLE` in the app's layers (attributes of service objects, followed
    from the outermost ASGI layer)."""
    found: dict[type, list[Any]] = {}
    seen: set[int] = set()
    stack: list[Any] = [app.asgi_handler]
    while stack:
        thing = stack.pop()
        if id(thing) in seen:
            continue
        seen.add(id(thing))
        if isinstance(thing, _RENEWABLE):
            found.setdefault(type(thing), []).append(thing)
        elif inspect.ismethod(thing):  # a layer's hook: a bound method of a service object
            stack.append(thing.__self__)
        elif type(thing).__module__.startswith("service."):
            stack.extend(vars(thing).values() if hasattr(thing, "__dict__") else ())
            for kind in type(thing).__mro__:
                stack.extend(getattr(thing, slot, None) for slot in getattr(kind, "__slots__", ()))
    return found


def _renewed(app: Litestar, settings: Settings, pristine: dict[str, Any]) -> Litestar:
    """`app` as create_app(settings) would make it again."""
    configure_logging(settings.log_level, settings.log_format)
    app.state.clear()
    app.state.update(pristine)
    for parts in _renewable_parts(app).values():
        for part in parts:
            part.reset()  # each class's documented way back to the state its constructor gives
    return app


def app_for(settings: Settings) -> Litestar:
    """create_app(settings), or the app made earlier for equal settings, renewed. An app whose
    layers are not as `_renewed` knows them (one each of rate limiting and caller listener),
    or that owns a tracer or an error tracker, is made anew each time."""
    if settings.tracing_enabled or settings.sentry_dsn:
        return create_app(settings)
    key = msgspec.json.encode(msgspec.structs.replace(settings, data_dir=""))
    if key in _REUSABLE:
        app, pristine = _REUSABLE[key]
        if id(app) not in _RUNNING:  # else a second app for equal settings in the same test
            return _renewed(app, settings, pristine)
        return create_app(settings)
    app = create_app(settings)
    parts = _renewable_parts(app)
    if len(parts.get(RateLimiting, ())) == 1 and len(parts.get(CallerListener, ())) == 1:
        _REUSABLE[key] = (app, dict(app.state))
    return app


@pytest.fixture
async def app(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Litestar]:
    async with running(app_for(settings)) as application:
        yield application


async def caught_up(app: Litestar) -> None:
    """Wait until the app's caller cache has applied every change committed so far. A change a
    test makes in SQL reaches a running worker within the notification latency, not at once
    (tests/scale/test_caller_cache.py measures that with real processes); in-process tests
    await this first so that they can assert the next request sees the change."""
    await app.state[CALLER_LISTENER_KEY].caught_up()


def caught_up_first(app: Litestar) -> dict[str, list[Any]]:
    """httpx event hooks: every request waits for `caught_up` before it is sent."""

    async def before_request(_: httpx.Request) -> None:
        await caught_up(app)

    return {"request": [before_request]}


@asynccontextmanager
async def client_of(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a running app, from one address, each request after `caught_up`."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks=caught_up_first(app)
    ) as http:
        yield http


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app of these settings (app_for: reused when equal settings made one before), running,
    and a client of it."""
    async with running(app_for(settings)) as app, client_of(app) as http:
        yield http


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app) as http:
        yield http


async def make_user(
    db: asyncpg.Connection, email: str | None = None, role: str = "user", provider: str = "local"
) -> uuid.UUID:
    """Insert a user directly (no password): for tests of routes other than registration."""
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    user_id: uuid.UUID = await db.fetchval(
        "INSERT INTO users (email, role, provider) VALUES ($1, $2, $3) RETURNING id", email, role, provider
    )
    return user_id


# A user as every route shows one (/api/auth/me, /api/users): these fields, never a hash.
USER_FIELDS = {
    "id",
    "email",
    "full_name",
    "role",
    "is_active",
    "provider",
    "email_verified",
    "created_at",
    "updated_at",
}


def bearer(settings: Settings, user_id: uuid.UUID) -> dict[str, str]:
    """An Authorization header with a fresh access token of ours for this user."""
    return {"Authorization": f"Bearer {issue_access_token(settings, user_id).token}"}
