"""A real PgBouncer in transaction mode in front of the test database, started per test module."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
import pytest

from tests import reaper
from tests.processes import free_port
from tests.system_tools import require_tool


@pytest.fixture(scope="session")
def pgbouncer() -> str:
    """The PgBouncer binary (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    return require_tool("pgbouncer", "apt-get install pgbouncer", "pgbouncer", "/usr/sbin/pgbouncer")


# `pgbouncer` comes first so that a machine without it skips before any database is set up.
@pytest.fixture(scope="module")
def pgbouncer_url(pgbouncer: str, database_url: str) -> Iterator[str]:
    target = urlsplit(database_url)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    # The embedded server requires its password (the machine's may trust loopback): PgBouncer
    # signs in to the server with the userlist's password, and trusts its own clients on loopback.
    (workdir / "userlist.txt").write_text(f'"{target.username}" "{unquote(target.password or "")}"\n')
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={target.hostname} port={target.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 8
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
"""
    )
    command = [pgbouncer, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        nobody = pwd.getpwnam("nobody")
        os.chown(workdir, nobody.pw_uid, nobody.pw_gid)
        for child in workdir.iterdir():
            os.chown(child, nobody.pw_uid, nobody.pw_gid)
        command.insert(1, "-u")
        command.insert(2, "nobody")
    process = reaper.popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = urlunsplit(target._replace(netloc=f"{target.username}@127.0.0.1:{port}"))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with psycopg.connect(url, connect_timeout=2, prepare_threshold=None) as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log_file = workdir / "pgbouncer.log"
                    log = log_file.read_text() if log_file.exists() else ""
                    raise RuntimeError(f"PgBouncer did not start:\n{log}") from None
                time.sleep(0.1)
        yield url
    finally:
        reaper.stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
