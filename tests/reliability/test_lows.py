"""Issue 23's lows: login CSRF, configurations refused at start-up, rate-limit gaps, the
/metrics token, U+2028 in JSON logs, control characters in task titles.

Run against the main branch this work started from, 43 of these 46 tests failed; the other 3
check what was already right (docs/reliability.md, "Issue 23: the lows").
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.observability.logs import AccessLog, JsonFormatter
from service.security.rate_limit import CLOCK_KEY, WINDOW_SECONDS
from service.settings import SettingsError, load_settings
from tests.accounts.conftest import STRONG_PASSWORD, register
from tests.conftest import TEST_JWT_SECRET, app_for, bearer, make_settings, make_user, running
from tests.processes import free_port, service_environment
from tests.system_tools import require_tool

FRONTEND = "http://localhost:5173"
METRICS_TOKEN = "metrics-" + "m" * 32

Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_client(database_url: str, tmp_path: Path, db: asyncpg.Connection) -> Client:
    """`async with app_client(peer="2001:db8::1", RATE_LIMIT_PER_MINUTE="3") as client:`, its rate
    limiter's clock standing still at the start of a one-minute window, so that all of a test's
    requests count in one window (instead of waiting for the next window when little of this one
    is left)."""

    @asynccontextmanager
    async def open_client(peer: str = "127.0.0.1", **env: str) -> AsyncIterator[httpx.AsyncClient]:
        app = app_for(make_settings(database_url, tmp_path, **env))
        window_start = float(int(time.time()) // WINDOW_SECONDS * WINDOW_SECONDS)
        app.state[CLOCK_KEY] = lambda: window_start
        async with running(app):
            transport = httpx.ASGITransport(app=app, client=(peer, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client

    return open_client


def load(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_settings({"DATA_DIR": str(tmp_path), **env}, env_file=tmp_path / "absent.env")


def with_peer(client: httpx.AsyncClient, peer: str) -> httpx.AsyncClient:
    """Another client of the same app, as seen from `peer`."""
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=transport.app, client=(peer, 40000)), base_url="http://testserver"
    )


# 1. Login CSRF with AUTH_COOKIES=on


async def _form_login(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await client.post(
        "/api/auth/login",
        data={"username": "ada@example.com", "password": STRONG_PASSWORD},
        headers=headers,
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/sign-in-as-me.html"},
        {"Origin": "https://evil.example", "Referer": f"{FRONTEND}/login"},
    ],
    ids=["foreign-origin", "null-origin", "foreign-referer", "origin-wins-over-referer"],
)
async def test_a_login_from_a_foreign_origin_is_refused_with_cookies_on(
    app_client: Client, headers: dict[str, str]
) -> None:
    async with app_client(AUTH_COOKIES="on") as client:
        assert (await register(client)).status_code == 201
        refused = await _form_login(client, **headers)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "CORS_ORIGINS" in refused.json()["detail"]
        assert "set-cookie" not in refused.headers
        # The same login from the frontend's origin, and from a client that sends neither header
        # (curl, a server-side client), signs in.
        for allowed in ({"Origin": FRONTEND}, {"Referer": f"{FRONTEND}/login"}, {}):
            response = await _form_login(client, **allowed)
            assert response.status_code == 200, (allowed, response.text)
            assert "refresh_token=" in response.headers["set-cookie"]


async def test_a_json_login_from_a_foreign_origin_is_refused_too(app_client: Client) -> None:
    async with app_client(AUTH_COOKIES="on") as client:
        assert (await register(client)).status_code == 201
        refused = await client.post(
            "/api/v1/auth/login",
            json={"email": "ada@example.com", "password": STRONG_PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
        assert refused.status_code == 403


async def test_with_cookies_off_a_login_sets_no_cookie_whatever_the_origin(app_client: Client) -> None:
    async with app_client() as client:
        assert (await register(client)).status_code == 201
        response = await _form_login(client, Origin="https://evil.example")
        assert response.status_code == 200
        assert "set-cookie" not in response.headers


# 2, 3, 6 and 9: configurations refused at start-up, in one line naming the variable


@pytest.mark.parametrize("environment", ["development", "test", "production"])
@pytest.mark.parametrize("variable", ["BETTER_AUTH_SECRET", "SUPABASE_JWT_SECRET"])
def test_a_provider_secret_equal_to_jwt_secret_is_refused(
    tmp_path: Path, environment: str, variable: str
) -> None:
    env = {"ENVIRONMENT": environment, "JWT_SECRET": TEST_JWT_SECRET, variable: TEST_JWT_SECRET}
    if environment == "production":
        env["DATABASE_URL"] = "postgresql://service@db.example/service"
        env["SMTP_URL"] = "smtp://mail.example.com:587"
        env["MFA_ENCRYPTION_KEY"] = "m" * 32
    with pytest.raises(SettingsError, match=f"{variable}.*JWT_SECRET|JWT_SECRET.*{variable}"):
        load(tmp_path, **env)
    del env[variable]
    load(tmp_path, **env)  # the rest of the configuration is fine


def test_a_provider_secret_equal_to_the_generated_development_secret_is_refused(tmp_path: Path) -> None:
    generated = load(tmp_path).jwt_secret
    with pytest.raises(SettingsError, match="BETTER_AUTH_SECRET"):
        load(tmp_path, BETTER_AUTH_SECRET=generated)


@pytest.mark.parametrize("auth_cookies", ["off", "on"])
@pytest.mark.parametrize("origins", ["null", "http://localhost:5173, null", "NULL"])
def test_null_in_cors_origins_is_refused(tmp_path: Path, auth_cookies: str, origins: str) -> None:
    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        load(tmp_path, JWT_SECRET=TEST_JWT_SECRET, AUTH_COOKIES=auth_cookies, CORS_ORIGINS=origins)


def test_a_wildcard_origin_is_refused_with_cookies_on(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        load(tmp_path, JWT_SECRET=TEST_JWT_SECRET, AUTH_COOKIES="on", CORS_ORIGINS="http://localhost:5173,*")
    load(tmp_path, JWT_SECRET=TEST_JWT_SECRET, CORS_ORIGINS="*")  # without cookies, no credentials ride on it


@pytest.mark.parametrize("token", ["x", "s" * 31, "s" * 20 + " " * 12])
def test_a_short_metrics_token_is_refused(tmp_path: Path, token: str) -> None:
    with pytest.raises(SettingsError, match="METRICS_TOKEN"):
        load(tmp_path, JWT_SECRET=TEST_JWT_SECRET, METRICS_TOKEN=token)
    assert load(tmp_path, JWT_SECRET=TEST_JWT_SECRET, METRICS_TOKEN="s" * 32).metrics_token == "s" * 32


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BETTER_AUTH_SECRET": TEST_JWT_SECRET}, ("BETTER_AUTH_SECRET", "JWT_SECRET")),
        ({"SUPABASE_JWT_SECRET": TEST_JWT_SECRET}, ("SUPABASE_JWT_SECRET", "JWT_SECRET")),
        ({"CORS_ORIGINS": "null"}, ("CORS_ORIGINS",)),
        ({"AUTH_COOKIES": "on", "CORS_ORIGINS": "*"}, ("CORS_ORIGINS",)),
        ({"METRICS_TOKEN": "short"}, ("METRICS_TOKEN",)),
        ({"ENVIRONMENT": "production", "MFA_ENCRYPTION_KEY": ""}, ("MFA_ENCRYPTION_KEY", "TWO_FACTOR")),
    ],
    ids=["better-auth", "supabase", "null-origin", "wildcard-with-cookies", "metrics-token", "mfa-key"],
)
def test_service_serve_refuses_in_one_line_naming_the_variable(
    database_url: str, tmp_path: Path, env: dict[str, str], named: tuple[str, ...]
) -> None:
    environ = service_environment(database_url, tmp_path, **env)
    finished = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(free_port())],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,  # the old code started serving: the test failed here
        check=False,
    )
    assert finished.returncode == 2, finished.stderr
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith("configuration error: ")
    for variable in named:
        assert variable in lines[0]


# 4 and 5: what the rate limit counts, and under which key


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/no-such-thing"), ("GET", "/api/v1/../etc/passwd"), ("DELETE", "/api/auth/login")],
    ids=["404", "404-traversal", "405"],
)
async def test_404s_and_405s_spend_the_budget(app_client: Client, method: str, path: str) -> None:
    async with app_client(RATE_LIMIT_PER_MINUTE="3") as client:
        first = await client.request(method, path)
        assert first.status_code in (404, 405)
        expected = first.status_code
        assert (await client.request(method, path)).status_code == expected
        assert (await client.request(method, path)).status_code == expected
        probe = await client.request(method, path)
        assert probe.status_code == 429, probe.text
        assert probe.headers["content-type"] == "application/problem+json"
        assert 1 <= int(probe.headers["retry-after"]) <= 60
        assert probe.headers["ratelimit-remaining"] == "0"
        assert probe.headers["x-request-id"]
        assert probe.json()["status"] == 429
        # The budget is the address's, whatever it asks next.
        assert (await client.get("/api/auth/me")).status_code == 429
        async with with_peer(client, "127.0.0.2") as other:
            assert (await other.request(method, path)).status_code == expected


async def test_a_burst_of_404s_gets_no_more_than_the_limit(app_client: Client) -> None:
    async with app_client(RATE_LIMIT_PER_MINUTE="5") as client:
        answers = await asyncio.gather(*(client.get(f"/api/probe-{n}") for n in range(40)))
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [404] * 5 + [429] * 35


async def test_an_ipv6_64_shares_one_budget(app_client: Client) -> None:
    async with app_client(peer="2001:db8:1:2::1", RATE_LIMIT_PER_MINUTE="3") as client:
        for peer in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:fffe"):
            async with with_peer(client, peer) as same_64:
                assert (await same_64.get("/api/auth/me")).status_code == 401
        async with with_peer(client, "2001:db8:1:2:abcd::9") as same_64:
            assert (await same_64.get("/api/auth/me")).status_code == 429
        async with with_peer(client, "2001:db8:1:3::1") as next_64:
            assert (await next_64.get("/api/auth/me")).status_code == 401
        # An IPv4 client on a dual-stack socket is the IPv4 address it is, with its own budget.
        async with with_peer(client, "::ffff:192.0.2.7") as mapped:
            assert (await mapped.get("/api/auth/me")).status_code == 401
        async with with_peer(client, "192.0.2.8") as neighbour:
            assert (await neighbour.get("/api/auth/me")).status_code == 401


# 6. /metrics token guesses


# The redis case starts the session's redis-server through request.getfixturevalue, which
# tests/harness.py does not follow: `slow` by hand.
@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.slow)])
async def test_metrics_token_guesses_are_limited(
    app_client: Client, request: pytest.FixtureRequest, store: str
) -> None:
    redis_env = {}
    if store == "redis":  # the Lua scripts that count and give back
        redis_env = {"REDIS_URL": request.getfixturevalue("redis_url"), "REDIS_KEY_PREFIX": uuid.uuid4().hex}
    async with app_client(METRICS_TOKEN=METRICS_TOKEN, AUTH_RATE_LIMIT_PER_MINUTE="3", **redis_env) as client:
        right = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        # Scrapes with the token spend nothing.
        for _ in range(5):
            assert (await client.get("/metrics", headers=right)).status_code == 200
        guesses = await asyncio.gather(
            *(client.get("/metrics", headers={"Authorization": f"Bearer guess-{n:032d}"}) for n in range(20))
        )
        statuses = sorted(response.status_code for response in guesses)
        assert statuses == [401] * 3 + [429] * 17
        limited = next(response for response in guesses if response.status_code == 429)
        assert limited.headers["content-type"] == "application/problem+json"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        # Past the limit nothing is checked, so the right token is no oracle.
        assert (await client.get("/metrics", headers=right)).status_code == 429
        assert (await client.get("/metrics")).status_code == 429
        async with with_peer(client, "127.0.0.2") as other:
            assert (await other.get("/metrics", headers=right)).status_code == 200


# 7. U+2028 and U+2029 in JSON log lines


def test_json_log_lines_escape_line_and_paragraph_separators() -> None:
    record = logging.makeLogRecord(
        {"name": "service.test", "levelname": "INFO", "msg": "a\u2028b\u2029c %s", "args": ("\u2028",)}
    )
    record.path = "/api/\u2029"
    line = JsonFormatter().format(record)
    assert "\u2028" not in line
    assert "\u2029" not in line
    assert len(line.splitlines()) == 1
    parsed = json.loads(line)
    assert parsed["message"] == "a\u2028b\u2029c \u2028"
    assert parsed["path"] == "/api/\u2029"


def test_json_access_lines_escape_line_and_paragraph_separators() -> None:
    stream = io.StringIO()
    access = AccessLog()
    access.configure(stream, json=True)
    access.write("req-1", "GET", "/api/\u2028x\u2029", 404, 1.0, "127.0.0.1")
    access.flush()
    output = stream.getvalue()
    assert "\u2028" not in output
    assert "\u2029" not in output
    assert len(output.splitlines()) == 1
    assert json.loads(output)["path"] == "/api/\u2028x\u2029"


# 8. Control characters in task titles and descriptions


@pytest.mark.parametrize(
    "title", ["a\x01b", "two\nlines", "\tindented", "bell\x07", "del\x7f", "esc\x1b[31m", "x\r"]
)
async def test_a_task_title_with_a_control_character_is_400(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings, title: str
) -> None:  # type: ignore[no-untyped-def]
    user_id = await make_user(db)
    headers = bearer(settings, user_id)
    created = await client.post(f"/api/{user_id}/tasks", json={"title": title}, headers=headers)
    assert created.status_code == 400, created.text
    assert created.json()["errors"][0]["field"] == "title"
    task = await client.post(f"/api/{user_id}/tasks", json={"title": "Buy groceries"}, headers=headers)
    assert task.status_code == 201
    changed = await client.patch(
        f"/api/{user_id}/tasks/{task.json()['id']}", json={"title": title}, headers=headers
    )
    assert changed.status_code == 400, changed.text


async def test_a_description_keeps_line_breaks_and_tabs_but_no_other_control_character(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings
) -> None:  # type: ignore[no-untyped-def]
    user_id = await make_user(db)
    headers = bearer(settings, user_id)
    url = f"/api/{user_id}/tasks"
    text = "Milk\r\n\teggs\nbread \u00e9 \u2028"
    kept = await client.post(url, json={"title": "  Groceries \u00e9", "description": text}, headers=headers)
    assert kept.status_code == 201, kept.text
    assert kept.json()["description"] == text
    for description in ("a\x00b", "a\x1bb", "a\x0bb", "a\x7fb", "a\x08b"):
        refused = await client.post(url, json={"title": "x", "description": description}, headers=headers)
        assert refused.status_code == 400, (description, refused.text)
        assert refused.json()["errors"][0]["field"] == "description"
    assert (await client.post(url, json={"title": " \u00a0 "}, headers=headers)).status_code == 400


# Where Python's and ECMAScript's `\s` differ (U+001C-U+001F, U+0085, U+FEFF), and the rest.
TEXT_SAMPLES = [
    "x",
    " x ",
    "",
    " ",
    "\x1c",
    "a\x1fb",
    "\x85",
    "\x85x",
    "\ufeff",
    "\ufeffx",
    "\u00a0",
    "\u2028x",
    "a\tb",
    "a\nb",
    "a\r\nb",
    "a\x0bb",
    "a\x00",
    "a\x7f",
    "\u00e9",
    "\U0001f600",
    "\u3000\u3000",
]


def test_the_task_patterns_mean_the_same_in_python_and_ecmascript() -> None:
    # Imported here, so the rest of the file runs against code without these patterns.
    from service.http.patterns import NO_CONTROL_CHARACTERS_BUT_LINE_BREAKS, NOT_BLANK_NO_CONTROL_CHARACTERS

    node = require_tool("node", "apt-get install nodejs")
    patterns = [NOT_BLANK_NO_CONTROL_CHARACTERS, NO_CONTROL_CHARACTERS_BUT_LINE_BREAKS]
    script = (
        "const [patterns, samples] = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(patterns.map(p => samples.map(s => new RegExp(p, 'u').test(s)))));"
    )
    answer = subprocess.run(
        [node, "-e", script],
        input=json.dumps([patterns, TEXT_SAMPLES]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    python = [[bool(re.search(pattern, sample)) for sample in TEXT_SAMPLES] for pattern in patterns]
    assert json.loads(answer.stdout) == python
    titles = dict(zip(TEXT_SAMPLES, python[0], strict=True))
    assert [sample for sample, accepted in titles.items() if accepted] == [
        "x",
        " x ",
        "\x85x",
        "\ufeffx",
        "\u2028x",
        "\u00e9",
        "\U0001f600",
    ]
