"""What leaves the process besides the answer: log lines without secrets, security headers everywhere."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.observability import logs
from tests.conftest import bearer, make_settings, make_user, running
from tests.operations.conftest import AppClient
from tests.operations.test_rate_limits import with_sign_in_routes
from tests.processes import serve


async def test_logs_never_carry_tokens_passwords_or_authorization(
    app_client: AppClient,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = await make_user(db)
    token_header = bearer(make_settings(database_url, tmp_path), user)
    token = token_header["Authorization"].removeprefix("Bearer ")
    secrets = {
        "token": token,
        "signature": token.rsplit(".", 1)[1],
        "body password": "body-password-1f7e",
        "query password": "query-password-9c2a",
        "query token": "query-token-77b1",
        "forged bearer": "forged-bearer-4d0c",
        "refresh token": "refresh-token-e3a9",
        "cookie": "cookie-secret-5b12",
    }
    async with app_client(
        prepare=with_sign_in_routes, LOG_LEVEL="DEBUG", TRUSTED_PROXIES="127.0.0.1"
    ) as client:
        await client.post(
            f"/api/auth/login?password={secrets['query password']}",
            data={"username": "ada@example.com", "password": secrets["body password"]},
            headers={
                "Authorization": f"Bearer {secrets['forged bearer']}",
                "X-Forwarded-For": "198.51.100.4",
            },
        )
        await client.post("/api/auth/refresh", json={"refresh_token": secrets["refresh token"]})
        await client.get(f"/api/users/{user}?access_token={secrets['query token']}", headers=token_header)
        await client.patch(
            f"/api/users/{user}", json={"password": secrets["body password"]}, headers=token_header
        )
        await client.get("/api/users", headers={"Authorization": f"Bearer {secrets['forged bearer']}"})
        await client.get("/api/users", headers={**token_header, "Cookie": f"session={secrets['cookie']}"})
    output = capsys.readouterr().err
    access = [
        entry
        for entry in (json.loads(line) for line in output.splitlines() if line.startswith("{"))
        if entry["logger"] == "service.access"
    ]
    assert len(access) == 6, "every request was logged, so the check below saw them"
    assert access[0]["path"] == "/api/auth/login"
    assert access[0]["client"] == "198.51.100.4"
    assert [entry["status"] for entry in access] == [401, 401, 200, 400, 401, 403]
    for name, secret in secrets.items():
        assert secret not in output, f"the {name} reached the logs"
    assert "authorization" not in output.lower()


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_each_request_gets_one_access_line_in_the_configured_format(
    app_client: AppClient, db: asyncpg.Connection, capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    async with app_client(LOG_LEVEL="INFO", LOG_FORMAT=log_format) as client:
        await client.get("/api/no-such-route", headers={"X-Request-ID": "req-42"})
    lines = [line for line in capsys.readouterr().err.splitlines() if "service.access" in line]
    assert len(lines) == 1
    if log_format == "json":
        entry = json.loads(lines[0])
        assert entry["logger"] == "service.access"
        assert entry["level"] == "INFO"
        assert entry["ts"].endswith("Z")
        assert (entry["method"], entry["path"], entry["status"], entry["request_id"]) == (
            "GET",
            "/api/no-such-route",
            404,
            "req-42",
        )
    else:
        assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO service\.access request ", lines[0])
        for part in ("request_id=req-42", "method=GET", "path=/api/no-such-route", "status=404"):
            assert part in lines[0]


async def test_access_lines_reach_the_stream_while_serving_and_all_of_them_at_shutdown(
    app_client: AppClient, db: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """Access lines are written in batches, not one write per request: a line waits at most
    ACCESS_LOG_FLUSH_SECONDS, a full batch goes at once, and shutdown writes what is left."""
    async with app_client(LOG_LEVEL="INFO") as client:
        await client.get("/health", headers={"X-Request-ID": "first-one"})
        await asyncio.sleep(logs.ACCESS_LOG_FLUSH_SECONDS + 0.3)
        assert "first-one" in capsys.readouterr().err, "a line waited longer than the flush interval"
        # Enough lines to fill a batch: written without waiting for the timer.
        batch = logs.ACCESS_LOG_FLUSH_BYTES // 150 + 1
        for number in range(batch):
            await client.get("/health", headers={"X-Request-ID": f"batch-{number}"})
        assert "batch-0" in capsys.readouterr().err
        for number in range(3):
            await client.get("/health", headers={"X-Request-ID": f"last-{number}"})
    written = capsys.readouterr().err
    assert all(f"last-{number}" in written for number in range(3)), "shutdown wrote the rest"


async def test_access_lines_follow_the_access_loggers_level(
    app_client: AppClient, db: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    async with app_client(LOG_LEVEL="WARNING") as client:
        await client.get("/health")
    assert "service.access" not in capsys.readouterr().err


def concrete_paths(app: Litestar) -> list[tuple[str, str]]:
    """Every route and method the app serves, with a made-up value for each path parameter."""
    pairs = []
    for route in app.routes:
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
        for method in sorted(getattr(route, "methods", {"GET"})):
            pairs.append((method, path))
    return pairs


@pytest.mark.parametrize("environment", ["test", "production"])
async def test_security_headers_on_every_route_and_hsts_only_in_production(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, environment: str
) -> None:
    app = create_app(make_settings(database_url, tmp_path, ENVIRONMENT=environment))
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            pairs = concrete_paths(app)
            assert len(pairs) > 10
            for method, path in pairs:
                response = await client.request(method, path)
                headers = response.headers
                where = f"{method} {path} -> {response.status_code}"
                assert headers["x-content-type-options"] == "nosniff", where
                assert headers["x-frame-options"] == "DENY", where
                assert headers["referrer-policy"] == "no-referrer", where
                assert "frame-ancestors 'none'" in headers["content-security-policy"], where
                assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"]), where
                if environment == "production":
                    assert headers["strict-transport-security"].startswith("max-age="), where
                else:
                    assert "strict-transport-security" not in headers, where


def test_a_normal_stop_writes_every_access_line_of_every_worker(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """SIGTERM well inside the 0.2 s batching window: both workers still write all their lines."""
    with serve(database_url, tmp_path, "--workers", "2", LOG_LEVEL="INFO") as started:
        ids = [f"stop-{number}" for number in range(40)]
        with httpx.Client(base_url=started.url, timeout=10) as http:
            for request_id in ids:
                assert http.get("/health", headers={"X-Request-ID": request_id}).status_code == 200
        started.process.terminate()
        assert started.process.wait(timeout=30) == 0
    logged = {
        entry["request_id"]
        for entry in (json.loads(line) for line in started.output().splitlines() if line.startswith("{"))
        if entry.get("logger") == "service.access"
    }
    assert logged >= set(ids)


def test_uvicorn_lines_in_json_carry_no_colour_codes(database_url: str, tmp_path: Path) -> None:
    """uvicorn's own records (start, listening address, stop) are plain JSON lines: no
    `color_message` field, no ANSI escape, in text or as a JSON `\\u001b` escape."""
    with serve(database_url, tmp_path, "--workers", "2", LOG_LEVEL="INFO", LOG_FORMAT="json") as started:
        started.process.terminate()
        assert started.process.wait(timeout=30) == 0
    lines = [line for line in started.output().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    uvicorn_messages = [entry["message"] for entry in entries if entry["logger"].startswith("uvicorn")]
    assert any(message.startswith("Uvicorn running on http://127.0.0.1:") for message in uvicorn_messages)
    assert any(message.startswith("Started server process") for message in uvicorn_messages)
    assert not [entry for entry in entries if "color_message" in entry]
    assert not [line for line in lines if "\x1b" in line or "\\u001b" in line.lower()]
