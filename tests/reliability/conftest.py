"""Real processes for the reliability tests: `service serve`, `service demo-ai`, and a signed-in user."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.accounts.conftest import STRONG_PASSWORD
from tests.processes import demo_ai, serve


@contextmanager
def demo_ai_process() -> Iterator[str]:
    """`service demo-ai` on a free loopback port; yields its base URL."""
    with tempfile.TemporaryDirectory(prefix="demo-ai-") as workdir, demo_ai(Path(workdir)) as url:
        yield url


@contextmanager
def live_service(
    database_url: str, tmp_path: Path, ai_url: str = "http://127.0.0.1:9", **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`service serve` against the test database (already migrated); yields (process, base URL).
    The limiter and the hash cost are eased (tests.processes), since the contract is under test."""
    with serve(database_url, tmp_path, AI_SERVICE_URL=ai_url, **env) as running:
        yield running.process, running.url


@dataclass(frozen=True)
class SignedIn:
    id: uuid.UUID
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def sign_up(http: httpx.Client, email: str | None = None) -> SignedIn:
    """Register and log in over HTTP, as a frontend does."""
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    registered = http.post("/api/auth/register", json={"email": email, "password": STRONG_PASSWORD})
    assert registered.status_code == 201, registered.text
    tokens = http.post("/api/auth/login", data={"username": email, "password": STRONG_PASSWORD})
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    return SignedIn(uuid.UUID(registered.json()["id"]), email, body["access_token"], body["refresh_token"])
