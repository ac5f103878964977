"""Issue 16, hostile clients: patterns that mean one thing in Python and ECMAScript, and no
database driver text in any answer (docs/reliability.md, "Issue 16: hostile clients")."""

from __future__ import annotations

import base64
import contextlib
import importlib
import inspect
import json
import pkgutil
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg
import httpx
import msgspec
import pytest
import yaml
from litestar import Request, get
from litestar.params import FromPath

import service
from service.app import AUTH_BODY_LIMIT_BYTES, create_app
from service.http.client_ip import ClientAddressResolver
from service.http.patterns import END_OF_STRING
from service.settings import PROJECT_ROOT, Settings
from tests.conftest import bearer, make_user, running
from tests.processes import ServiceProcess, serve
from tests.reliability.routes import built_app
from tests.system_tools import require_tool

PROBLEM_JSON = "application/problem+json"
JSON = {"Content-Type": "application/json"}
# Strings a pattern may be asked about, among them the ones `$` treats differently in Python.
PATTERN_SAMPLES = [
    "",
    "\n",
    "Eve",
    "Eve\n",
    "Eve\nAdams",
    " Eve",
    "ada@example.com",
    "ada@example.com\n",
    "user.deleted",
    "user.deleted\n",
    "service",
    "service\n",
    "a\x00b",
    "a\x7f",
]
DRIVER_WORDS = ("query argument", "datetime.datetime", "asyncpg", "$1", "$2", "$3", "$4", "out of int")


def _walk(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _walk(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _walk(item)


def _struct_patterns() -> set[str]:
    """The pattern of every msgspec Meta on every Struct defined under service/."""
    structs: list[type] = []
    for module_info in pkgutil.walk_packages(service.__path__, "service."):
        module = importlib.import_module(module_info.name)
        structs += [
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and issubclass(value, msgspec.Struct)
            and value.__module__ == module.__name__
        ]
    found: set[str] = set()
    for info in msgspec.inspect.multi_type_info(structs):
        found.update(_walk(msgspec.to_builtins(info, builtin_types=(type,), enc_hook=repr)))
    return found


def every_pattern() -> list[str]:
    documented = set(_walk(built_app().openapi_schema.to_schema()))
    return sorted(documented | _struct_patterns())


def test_every_pattern_ends_at_the_end_of_the_string() -> None:
    patterns = every_pattern()
    assert len(patterns) >= 6, patterns  # the walk found the Structs and parameters
    loose = [pattern for pattern in patterns if not pattern.endswith(END_OF_STRING)]
    assert loose == [], "use service.http.patterns.whole(): Python's `$` matches before a final newline"


def test_every_pattern_means_the_same_in_python_and_ecmascript() -> None:
    node = require_tool("node", "apt-get install nodejs")
    patterns = every_pattern()
    script = (
        "const [patterns, samples] = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(patterns.map(p => samples.map(s => new RegExp(p, 'u').test(s)))));"
    )
    answer = subprocess.run(
        [node, "-e", script],
        input=json.dumps([patterns, PATTERN_SAMPLES]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ecmascript = json.loads(answer.stdout)
    differences = [
        (pattern, sample)
        for pattern, verdicts in zip(patterns, ecmascript, strict=True)
        for sample, verdict in zip(PATTERN_SAMPLES, verdicts, strict=True)
        if bool(re.search(pattern, sample)) != verdict
    ]
    assert differences == []


def _refused_as_400(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_a_trailing_newline_is_refused_where_control_characters_are(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
) -> None:
    register = await client.post(
        "/api/auth/register",
        json={"email": "eve@example.com", "password": "correct horse battery", "full_name": "Eve\n"},
    )
    _refused_as_400(register, "full_name")
    newline_email = await client.post(
        "/api/auth/register", json={"email": "eve@example.com\n", "password": "correct horse battery"}
    )
    _refused_as_400(newline_email, "email")
    assert await db.fetchval("SELECT count(*) FROM users") == 0

    admin = await make_user(db, role="admin")
    renamed = await client.patch(
        f"/api/users/{admin}", json={"full_name": "Eve\n"}, headers=bearer(settings, admin)
    )
    _refused_as_400(renamed, "full_name")
    action = await client.get(
        "/api/audit-events", params={"action": "user.deleted\n"}, headers=bearer(settings, admin)
    )
    _refused_as_400(action, "action")

    allowed = await client.patch(
        f"/api/users/{admin}", json={"full_name": "Eve"}, headers=bearer(settings, admin)
    )
    assert allowed.status_code == 200, allowed.text


def _no_driver_text(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    leaked = [word for word in DRIVER_WORDS if word in response.text]
    assert leaked == [], response.text


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


# Instants a datetime can hold but UTC cannot: the driver refused them after the query was sent.
UNREPRESENTABLE_IN_UTC = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-10:00"]


@pytest.mark.parametrize("instant", UNREPRESENTABLE_IN_UTC)
async def test_audit_ranges_outside_utc_are_400_naming_the_parameter(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings, instant: str
) -> None:
    admin = await make_user(db, role="admin")
    for parameter in ("since", "until"):
        response = await client.get(
            "/api/audit-events", params={parameter: instant}, headers=bearer(settings, admin)
        )
        _no_driver_text(response)
        assert response.json()["errors"][0]["field"] == parameter
        assert "between 0001-01-01 and 9999-12-31" in response.json()["detail"]


@pytest.mark.parametrize("instant", UNREPRESENTABLE_IN_UTC)
async def test_a_forged_scan_cursor_is_400_without_driver_text(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings, instant: str
) -> None:
    user = await make_user(db)
    cursor = _cursor(f"{instant}|00000000-0000-0000-0000-000000000000")
    response = await client.get("/api/scans", params={"cursor": cursor}, headers=bearer(settings, user))
    _no_driver_text(response)
    assert response.json()["errors"][0]["field"] == "cursor"


@get("/probe/int/{value:str}")
async def _store_as_int(value: FromPath[str], request: Request[Any, Any, Any]) -> int:
    # A route that forgot to validate: the value reaches PostgreSQL as it came.
    async with request.app.state.pool.acquire() as connection:
        return int(await connection.fetchval("SELECT $1::int", int(value)))


@get("/probe/text/{value:str}")
async def _store_as_text(value: FromPath[str], request: Request[Any, Any, Any]) -> str:
    async with request.app.state.pool.acquire() as connection:
        return str(await connection.fetchval("SELECT $1::text", value.replace("NUL", "\x00")))


async def test_no_driver_message_reaches_a_client_from_any_route(
    settings: Settings, db: asyncpg.Connection
) -> None:
    app = create_app(settings)
    app.register(_store_as_int)
    app.register(_store_as_text)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await http.get("/probe/int/7")).json() == 7
            too_big = await http.get(f"/probe/int/{2**40}")
            _no_driver_text(too_big)
            assert (
                too_big.json()["detail"] == "invalid input: a value is out of the range the database accepts"
            )
            with_nul = await http.get("/probe/text/aNULb")
            _no_driver_text(with_nul)
            assert "cannot store" in with_nul.json()["detail"]
            assert "0x00" not in with_nul.text


# Against a real `service serve`, over raw sockets where the client's bytes are the attack. One
# server serves every test that does not need limits of its own (starting one takes seconds).
HEAD_TIMEOUT_SECONDS = 3


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("served")
    environ = {
        "HTTP_HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT_SECONDS),
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "INFO",
    }
    with serve(database_url, workdir, **environ) as server:
        yield server


def _connect(server: ServiceProcess, timeout: float = 15) -> socket.socket:
    address = urlsplit(server.url)
    connection = socket.create_connection((address.hostname, address.port), timeout=timeout)
    connection.settimeout(timeout)
    return connection


def _read_until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes; a reset counts as closed."""
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _read_response(connection: socket.socket) -> bytes:
    """One response on a connection that stays open (every answer here has a Content-Length)."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def _send_ignoring_a_closed_peer(connection: socket.socket, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        connection.sendall(data)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _head(*headers: bytes) -> bytes:
    return b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(headers)


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]


def test_request_heads_over_the_limit_are_431_and_never_buffered(server: ServiceProcess) -> None:
    limit = Settings().http_max_header_bytes
    with _connect(server) as fitting:
        fitting.sendall(_head(b"X-Fits: " + b"a" * (limit - 200) + b"\r\n", b"Connection: close\r\n\r\n"))
        assert _status(_read_until_closed(fitting)) == 200

    with _connect(server) as one_long_header:
        one_long_header.sendall(_head(b"X-Long: " + b"a" * limit + b"\r\n\r\n"))
        answer = _read_until_closed(one_long_header)
    assert _status(answer) == 431, answer
    assert b"application/problem+json" in answer
    assert f"at most {limit} bytes".encode() in answer

    many_headers = _head(*(b"X-%d: a\r\n" % number for number in range(100_000)), b"\r\n")
    with _connect(server) as connection:
        _send_ignoring_a_closed_peer(connection, many_headers)
        answer = _read_until_closed(connection)
    assert answer == b"" or _status(answer) == 431, answer[:200]

    # Ten clients each sending 4 MiB of one unfinished header: each is cut off at the limit
    # (on main the worker held all 40 MiB, and more, for as long as the clients wished).
    before = _rss_kib(server.process.pid)
    clients = [_connect(server) for _ in range(10)]
    try:
        for client in clients:
            _send_ignoring_a_closed_peer(client, _head(b"X-Endless: " + b"a" * (4 * 1024 * 1024)))
        for client in clients:
            answer = _read_until_closed(client)
            assert answer == b"" or _status(answer) == 431, answer[:200]
    finally:
        for client in clients:
            client.close()
    assert _rss_kib(server.process.pid) - before < 20 * 1024
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_a_request_head_that_does_not_arrive_in_time_is_closed(server: ServiceProcess) -> None:
    with _connect(server) as half_sent:
        half_sent.sendall(_head())  # the blank line that ends the head never comes
        answer = _read_until_closed(half_sent)
    assert _status(answer) == 408, answer
    assert f"within {HEAD_TIMEOUT_SECONDS} s".encode() in answer

    with _connect(server) as silent:
        assert _read_until_closed(silent) == b""

    # Bytes that keep coming do not keep a head open: the clock runs from its first byte.
    with _connect(server) as trickling:
        trickling.sendall(_head())
        deadline = time.monotonic() + 15
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                trickling.sendall(b"X: y\r\n")
                time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        assert closed or _read_until_closed(trickling) != b"", "a trickled head was never cut off"

    # A request that does arrive in time is served, and so is the next one on the same connection.
    with _connect(server) as keep_alive:
        for _ in range(2):
            keep_alive.sendall(_head(b"\r\n"))
            assert _status(_read_response(keep_alive)) == 200


def test_connections_beyond_the_cap_are_refused_with_503(database_url: str, tmp_path: Path) -> None:
    cap = 4
    with serve(
        database_url, tmp_path, HTTP_MAX_CONNECTIONS=str(cap), HTTP_HEADER_TIMEOUT_SECONDS="60"
    ) as server:
        held = [_connect(server) for _ in range(cap)]
        try:
            for connection in held:
                # One answered request proves the worker holds the connection; the start of the
                # next one keeps it from idling out.
                connection.sendall(_head(b"\r\n"))
                assert _status(_read_response(connection)) == 200
                connection.sendall(b"GET /health HTTP/1.1\r\n")
            with _connect(server) as one_too_many:
                answer = _read_until_closed(one_too_many)
            assert _status(answer) == 503, answer
            assert b"retry-after: 1" in answer.lower()

            held.pop().close()
            deadline = time.monotonic() + 15
            while True:
                with _connect(server) as again:
                    again.sendall(_head(b"Connection: close\r\n\r\n"))
                    answer = _read_until_closed(again)
                if _status(answer) == 200:
                    break
                assert time.monotonic() < deadline, "a freed connection slot was never reused"
                time.sleep(0.1)
        finally:
            for connection in held:
                connection.close()


def _tiny_fields(size: int) -> bytes:
    return (b"a=&" * (size // 3 + 1))[:size]


def test_auth_bodies_over_a_few_kib_are_413_before_parsing(
    server: ServiceProcess, db: asyncpg.Connection
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        megabyte_form = http.post("/api/auth/login", content=_tiny_fields(1024 * 1024), headers=form)
        assert megabyte_form.status_code == 413, megabyte_form.text
        assert megabyte_form.headers["content-type"] == PROBLEM_JSON

        def streamed() -> Iterator[bytes]:
            for _ in range(64):
                yield _tiny_fields(16 * 1024)

        unannounced = http.post("/api/auth/login", content=streamed(), headers=form)
        assert unannounced.status_code == 413, unannounced.text
        for path in ("/api/auth/register", "/api/auth/refresh", "/api/v1/auth/logout"):
            oversized = http.post(
                path, content=b'{"x": "' + b"a" * AUTH_BODY_LIMIT_BYTES + b'"}', headers=JSON
            )
            assert oversized.status_code == 413, (path, oversized.text)

        # The largest body a person can send still fits: every field at its longest, all escaped.
        email = "a" * 64 + "@" + ".".join(["b" * 63] * 4)[: 320 - 65]
        longest = {"email": email, "password": "\U0001f600" * 128, "full_name": "\U0001f600" * 200}
        body = json.dumps(longest).encode()  # json.dumps escapes every emoji as two \\uXXXX
        assert len(body) > 4000
        registered = http.post("/api/auth/register", content=body, headers=JSON)
        assert registered.status_code == 201, registered.text
        signed_in = http.post("/api/auth/login", data={"username": email, "password": longest["password"]})
        assert signed_in.status_code == 200, signed_in.text


def test_text_logs_escape_control_characters(server: ServiceProcess) -> None:
    forged = "2026-12-01 00:00:00,000 INFO service.access request request_id=forged method=GET path=/admin"
    with _connect(server) as connection:
        connection.sendall(
            b"GET /x%0A" + quote(forged).encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert _status(_read_until_closed(connection)) == 404
    deadline = time.monotonic() + 15
    while "request_id=forged" not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    lines = [line for line in server.output().splitlines() if "request_id=forged" in line]
    assert len(lines) == 1
    assert "path=/x\\x0a2026-12-01\\x2000:00:00" in lines[0]
    assert not lines[0].startswith("2026-12-01 00:00:00,000")


def test_the_compose_example_trusts_only_the_proxy_it_publishes() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    published = sorted(name for name, service in services.items() if service.get("ports"))
    assert published == ["proxy"], "a replica reachable directly would be reached from a trusted address"
    proxy_address = services["proxy"]["networks"]["edge"]["ipv4_address"]
    trusted = {
        name: entry["environment"].get("TRUSTED_PROXIES")
        for name, entry in services.items()
        if "environment" in entry
    }
    assert trusted["api-1"] == trusted["api-2"] == proxy_address, trusted

    nginx = (PROJECT_ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"proxy_set_header X-Forwarded-For \$remote_addr;", nginx), "the proxy must replace it"

    # What a replica then concludes: a forged header from anywhere but the proxy names the sender.
    resolver = ClientAddressResolver([proxy_address])
    forged = [(b"x-forwarded-for", b"203.0.113.9")]
    bridge_gateway = {"client": ("172.30.0.1", 40000), "headers": forged}
    via_proxy = {"client": (proxy_address, 40000), "headers": forged}
    assert resolver.resolve(bridge_gateway) == "172.30.0.1"  # type: ignore[arg-type]
    assert resolver.resolve(via_proxy) == "203.0.113.9"  # type: ignore[arg-type]
