"""Real signing keys, real JWKS servers on loopback, and an app that trusts both providers.

Tokens are checked through `authenticate()`, the function every protected route runs, on a
request bound to the running app. `caller_for` and `refusal_of` are the only places that know
this, so these tests can move to GET /api/auth/me by changing those two helpers.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from litestar import Litestar
from litestar.exceptions import HTTPException
from litestar.testing import RequestFactory

from service.security.auth import Caller, authenticate
from service.security.jwks import STATE_KEY, JwksCache
from service.security.providers import KEY_CHECK_STATE_KEY
from service.settings import Settings
from tests.conftest import app_for, caught_up, make_settings, running
from tests.processes import http_server_in_thread

SUPABASE_JWKS_PATH = "/auth/v1/.well-known/jwks.json"
BETTER_AUTH_JWKS_PATH = "/api/auth/jwks"
# Every `jwks.keyPairConfig.alg` Better Auth's jwt plugin offers.
BETTER_AUTH_ALGORITHMS = ("EdDSA", "ES256", "ES512", "RS256", "PS256")
SUPABASE_SECRET = "supabase-legacy-jwt-secret-" + "s" * 24
BETTER_AUTH_SECRET = "better-auth-shared-secret-" + "b" * 24


class Clock:
    """The JWKS cache's notion of time, moved by the test instead of waited for."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private_key: Any

    @property
    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk = algorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(
            claims, self.private_key, algorithm=self.algorithm, headers={"kid": self.kid, **(headers or {})}
        )


def new_key(algorithm: str, kid: str | None = None) -> SigningKey:
    private_key: Any
    if algorithm == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "ES512":
        private_key = ec.generate_private_key(ec.SECP521R1())
    elif algorithm == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(
        kid=kid or f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}", algorithm=algorithm, private_key=private_key
    )


@dataclass
class JwksServer:
    """A provider's JWKS endpoint: serves `keys` at `path` and counts every request it gets."""

    path: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    cache_control: str | None = None
    failing: bool = False
    raw_body: bytes | None = None
    requests: Counter[str] = field(default_factory=Counter)
    url: str = ""

    @property
    def fetches(self) -> int:
        return self.requests[self.path]

    def forget_requests(self) -> None:
        self.requests.clear()

    def publish(self, *keys: SigningKey) -> None:
        self.keys = [key.public_jwk for key in keys]


def _handler_for(current: Callable[[], JwksServer]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server = current()
            server.requests[self.path] += 1
            if server.failing:
                self.send_response(503)
                self.end_headers()
                return
            if self.path != server.path:
                self.send_response(404)
                self.end_headers()
                return
            body = server.raw_body or json.dumps({"keys": server.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if server.cache_control:
                self.send_header("Cache-Control", server.cache_control)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(server: JwksServer) -> Iterator[JwksServer]:
    with http_server_in_thread(_handler_for(lambda: server)) as httpd:
        server.url = f"http://127.0.0.1:{httpd.server_port}"
        yield server


@dataclass
class Endpoint:
    """A JWKS endpoint on one port for the whole session, serving the current test's JwksServer:
    the providers' URLs, hence the settings, stay the same from test to test, so the `app`
    fixture reuses one app (tests/conftest.py, `app_for`) instead of building one per test."""

    server: JwksServer
    url: str = ""


@contextmanager
def endpoint(path: str) -> Iterator[Endpoint]:
    served = Endpoint(JwksServer(path=path))
    with http_server_in_thread(_handler_for(lambda: served.server)) as httpd:
        served.url = f"http://127.0.0.1:{httpd.server_port}"
        yield served


def behind(served: Endpoint, *keys: SigningKey) -> JwksServer:
    """A new JwksServer publishing `keys`, in place of the previous test's behind `served`."""
    server = JwksServer(path=served.server.path, url=served.url)
    server.publish(*keys)
    served.server = server
    return server


class WarningsOf(logging.Handler):
    """The warnings one logger writes while this is entered. Attached to that logger, not to the
    root, whose handlers create_app replaces."""

    def __init__(self, logger: str) -> None:
        super().__init__(logging.WARNING)
        self.logger = logging.getLogger(logger)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> WarningsOf:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)


@pytest.fixture(scope="session")
def supabase_es256() -> SigningKey:
    return new_key("ES256")


@pytest.fixture(scope="session")
def supabase_rs256() -> SigningKey:
    return new_key("RS256")


@pytest.fixture(scope="session")
def better_auth_keys() -> dict[str, SigningKey]:
    return {algorithm: new_key(algorithm) for algorithm in BETTER_AUTH_ALGORITHMS}


@pytest.fixture(scope="session")
def supabase_endpoint() -> Iterator[Endpoint]:
    with endpoint(SUPABASE_JWKS_PATH) as served:
        yield served


@pytest.fixture(scope="session")
def better_auth_endpoint() -> Iterator[Endpoint]:
    with endpoint(BETTER_AUTH_JWKS_PATH) as served:
        yield served


@pytest.fixture
def supabase_server(
    supabase_endpoint: Endpoint, supabase_es256: SigningKey, supabase_rs256: SigningKey
) -> JwksServer:
    """Supabase's JWKS endpoint, new for this test (its keys, failures and request counts)."""
    return behind(supabase_endpoint, supabase_es256, supabase_rs256)


@pytest.fixture
def better_auth_server(better_auth_endpoint: Endpoint, better_auth_keys: dict[str, SigningKey]) -> JwksServer:
    """Better Auth's JWKS endpoint, new for this test."""
    return behind(better_auth_endpoint, *better_auth_keys.values())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(
    database_url: str, tmp_path: Path, supabase_server: JwksServer, better_auth_server: JwksServer
) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        SUPABASE_URL=supabase_server.url,
        SUPABASE_JWT_SECRET=SUPABASE_SECRET,
        BETTER_AUTH_URL=better_auth_server.url,
        BETTER_AUTH_SECRET=BETTER_AUTH_SECRET,
    )


@asynccontextmanager
async def app_with_clock(settings: Settings, clock: Clock, *servers: JwksServer) -> AsyncIterator[Litestar]:
    """The app, its start-up key check done, with a cache on `clock` and nothing fetched yet:
    `servers` forget the start-up check's requests."""
    async with running(app_for(settings)) as app:
        await app.state[KEY_CHECK_STATE_KEY]
        for server in servers:
            server.forget_requests()
        started_with = app.state[STATE_KEY]
        app.state[STATE_KEY] = JwksCache(clock, clock.sleep)
        try:
            yield app
        finally:
            await app.state[STATE_KEY].aclose()
            app.state[STATE_KEY] = started_with


@pytest.fixture
async def app(
    settings: Settings,
    db: asyncpg.Connection,
    clock: Clock,
    supabase_server: JwksServer,
    better_auth_server: JwksServer,
) -> AsyncIterator[Litestar]:
    async with app_with_clock(settings, clock, supabase_server, better_auth_server) as application:
        yield application


async def caller_for(app: Litestar, token: str) -> Caller:
    """Who a protected route sees when called with this bearer token."""
    await caught_up(app)
    request = RequestFactory(app=app).get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    return await authenticate(request)


async def refusal_of(app: Litestar, token: str) -> HTTPException:
    """The HTTP error a protected route answers for this bearer token."""
    with pytest.raises(HTTPException) as refused:
        await caller_for(app, token)
    return refused.value


def supabase_claims(url: str, **changes: Any) -> dict[str, Any]:
    """A Supabase Auth access token's claims; a change to None drops that claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": f"{url}/auth/v1",
        "aud": "authenticated",
        "sub": str(uuid.uuid4()),
        "exp": now + 3600,
        "iat": now,
        "email": f"crm-{uuid.uuid4().hex[:8]}@example.com",
        "phone": "",
        "role": "authenticated",
        "aal": "aal1",
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
        "app_metadata": {"provider": "google", "providers": ["google"]},
        "user_metadata": {"full_name": "Ada Lovelace"},
    }
    return _changed(claims, changes)


def better_auth_claims(url: str, **changes: Any) -> dict[str, Any]:
    """A Better Auth jwt-plugin token's claims (the user object plus iss, aud, sub, iat, exp)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": url,
        "aud": url,
        "sub": f"ba_{uuid.uuid4().hex[:20]}",
        "exp": now + 900,
        "iat": now,
        "email": f"taskflow-{uuid.uuid4().hex[:8]}@example.com",
        "name": "Grace Hopper",
        "emailVerified": True,
    }
    return _changed(claims, changes)


def seed_002_claims(**changes: Any) -> dict[str, Any]:
    """What the TaskFlow frontend signs with BETTER_AUTH_SECRET: sub, iat, exp and nothing else."""
    now = int(time.time())
    return _changed({"sub": f"user_{uuid.uuid4().hex[:16]}", "iat": now, "exp": now + 3600}, changes)


def _changed(claims: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**claims, **changes}
    return {name: value for name, value in merged.items() if value is not None}


def hs256(claims: dict[str, Any], secret: str | bytes, headers: dict[str, Any] | None = None) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)
