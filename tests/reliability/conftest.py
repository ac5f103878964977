"""Real processes for the reliability tests: `service serve`, `service demo-ai`, and a signed-in user."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.accounts.conftest import STRONG_PASSWORD
from tests.foundation.test_serve import free_port, serve

# The contract is under test here, not the limiter or the hash cost.
FAST_SERVER_ENV = {
    "ENVIRONMENT": "test",
    "ARGON2_MEMORY_KIB": "8192",
    "ARGON2_TIME_COST": "1",
    "RATE_LIMIT_PER_MINUTE": "1000000",
    "AUTH_RATE_LIMIT_PER_MINUTE": "1000000",
}


@contextmanager
def demo_ai_process() -> Iterator[str]:
    """`service demo-ai` on a free loopback port; yields its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "demo-ai", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the demo AI service exited during start-up"
                assert time.monotonic() < deadline, "the demo AI service did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def live_service(
    database_url: str, tmp_path: Path, ai_url: str = "http://127.0.0.1:9", **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`service serve` against the test database (already migrated); yields (process, base URL)."""
    with serve(database_url, tmp_path, **{**FAST_SERVER_ENV, "AI_SERVICE_URL": ai_url, **env}) as running:
        yield running


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
