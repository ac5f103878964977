"""Real Better Auth servers (the pinned package beside this file) on loopback, and their users.

`npm ci` installs the package into node_modules the first time a test needs it. One
`node server.mjs` process serves every configuration in SERVERS for the whole test session
(importing better-auth takes seconds) and is stopped by its pid.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from tests import reaper
from tests.system_tools import NODE_INSTALL, npm_ci, require_tool

PACKAGE_DIR = Path(__file__).resolve().parent
START_TIMEOUT_SECONDS = 30
NPM_CI_TIMEOUT_SECONDS = 300


def _installed_matches_lockfile() -> bool:
    wanted = json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"]
    for name, version in wanted.items():
        installed = PACKAGE_DIR / "node_modules" / name / "package.json"
        if not installed.is_file() or json.loads(installed.read_text())["version"] != version:
            return False
    return True


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with the pinned Better Auth installed beside server.mjs."""
    if _installed_matches_lockfile():
        return require_tool("node", NODE_INSTALL)
    return npm_ci(PACKAGE_DIR, NPM_CI_TIMEOUT_SECONDS, "--loglevel=error")


@dataclass
class BetterAuthServer:
    """One running Better Auth: `url` is its baseURL, `base_path` where its routes are."""

    url: str
    base_path: str
    log: Path

    @property
    def api(self) -> str:
        return f"{self.url}{self.base_path}"

    @asynccontextmanager
    async def user(self, name: str = "Ada Lovelace") -> AsyncIterator[BetterAuthUser]:
        """A new user, signed up by email and password and so signed in (a session cookie)."""
        async with httpx.AsyncClient(base_url=self.api, timeout=10) as session:
            email = f"ba-{uuid.uuid4().hex[:10]}@example.com"
            signed_up = await session.post(
                "/sign-up/email", json={"email": email, "password": "correct horse battery", "name": name}
            )
            assert signed_up.status_code == 200, signed_up.text
            yield BetterAuthUser(session=session, id=signed_up.json()["user"]["id"], email=email, name=name)


@dataclass
class BetterAuthUser:
    session: httpx.AsyncClient
    id: str
    email: str
    name: str

    async def jwt(self) -> str:
        """What a frontend sends our API: the jwt plugin's token for this session."""
        answer = await self.session.get("/token")
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["token"]
        return token


def key_id(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


# The servers the tests use, by name: options as a frontend's auth.ts would set them (server.mjs).
SERVERS: dict[str, dict[str, str | int]] = {
    "EdDSA": {},  # the jwt plugin's default key pair
    "ES256": {"alg": "ES256"},
    "ES512": {"alg": "ES512"},
    "RS256": {"alg": "RS256"},
    "PS256": {"alg": "PS256"},
    "custom-paths": {"basePath": "/auth", "jwksPath": "/.well-known/jwks.json"},
    "custom-claims": {"audience": "taskflow-api", "issuer": "https://auth.taskflow.example"},
    "rotating": {"rotationInterval": 1},
}


def _listening(log: Path) -> dict[str, str]:
    """name -> baseURL of each server that said `listening <name> <baseURL>`."""
    lines = [line.split() for line in log.read_text().splitlines() if line.startswith("listening ")]
    return {words[1]: words[2] for words in lines if len(words) == 3}


@contextmanager
def better_auth_servers(node: str, workdir: Path) -> Iterator[dict[str, BetterAuthServer]]:
    """Every server of SERVERS, in one `node server.mjs` process, once each answers."""
    log = workdir / "better-auth.log"
    with log.open("wb") as sink:
        process = reaper.popen(
            [node, str(PACKAGE_DIR / "server.mjs"), json.dumps(SERVERS)],
            cwd=PACKAGE_DIR,
            stdout=sink,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while len(urls := _listening(log)) < len(SERVERS):
            assert process.poll() is None, f"Better Auth exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"Better Auth did not start:\n{log.read_text()}"
            time.sleep(0.05)
        yield {
            name: BetterAuthServer(
                url=urls[name], base_path=str(options.get("basePath", "/api/auth")), log=log
            )
            for name, options in SERVERS.items()
        }
    finally:
        reaper.stop(process)


@pytest.fixture(scope="session")
def better_auth(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BetterAuthServer]]:
    with better_auth_servers(node, tmp_path_factory.mktemp("better-auth")) as servers:
        yield servers
