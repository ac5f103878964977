"""Hostile input on every documented operation: the answer is a 4xx problem, never a 500.

Operations come from the app's own OpenAPI document, so a new route is covered as soon as it is
documented. A valid body for each JSON route is in _valid_bodies; a JSON route missing there fails.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg
import httpx
import pytest

from service.app import JSON_BODY_LIMIT_BYTES
from service.settings import Settings
from tests.accounts.conftest import STRONG_PASSWORD
from tests.conftest import bearer
from tests.reliability.conftest import live_service
from tests.reliability.routes import Operation, documented_operations, fill_path, path_parameters

OPERATIONS = documented_operations()
JSON_OPERATIONS = [operation for operation in OPERATIONS if operation.takes_json]
QUERY_OPERATIONS = [operation for operation in OPERATIONS if operation.query]
PATH_OPERATIONS = [operation for operation in OPERATIONS if path_parameters(operation.path)]
BODY_OPERATIONS = [operation for operation in OPERATIONS if operation.body_types]

PROBLEM_JSON = "application/problem+json"
DEPTH = 100_000
# Past msgspec's limit of about 1000 levels, and inside the auth routes' 8 KiB body limit (deeper
# is a 413 there before anything is parsed).
AUTH_DEPTH = 1_300
# Fields compared only as a hash: a NUL there is an ordinary (if odd) character, never stored.
HASHED_FIELDS = {"password", "current_password", "refresh_token"}


class Owner:
    """A registered administrator with a task and a scan, and the ids that fill any path."""

    def __init__(self, user_id: uuid.UUID, email: str, settings: Settings, ids: dict[str, str]) -> None:
        self.id = user_id
        self.email = email
        self.settings = settings
        self.ids = ids

    @property
    def headers(self) -> dict[str, str]:
        # Fresh each time: a logout among the requests ends the token it is sent with.
        return bearer(self.settings, self.id)


@pytest.fixture
async def owner(client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings) -> Owner:
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    registered = await client.post("/api/auth/register", json={"email": email, "password": STRONG_PASSWORD})
    user_id = uuid.UUID(registered.json()["id"])
    task_id = await db.fetchval(
        "INSERT INTO tasks (user_id, title) VALUES ($1, 'mine') RETURNING id", user_id
    )
    scan_id = await db.fetchval(
        "INSERT INTO scans (user_id, data, source) VALUES ($1, '[]'::jsonb, 'model') RETURNING id", user_id
    )
    # An administrator, so the admin routes' inputs are tested too, not just their 403.
    await db.execute("UPDATE users SET role = 'admin' WHERE id = $1", user_id)
    ids = {"user_id": str(user_id), "task_id": str(task_id), "scan_id": str(scan_id)}
    return Owner(user_id, email, settings, ids)


def _valid_bodies(owner: Owner) -> dict[str, dict[str, Any]]:
    """A body each JSON operation accepts, by "METHOD /path"."""
    return {
        "POST /api/auth/register": {
            "email": "new@example.com",
            "password": STRONG_PASSWORD,
            "full_name": "A",
        },
        "POST /api/auth/refresh": {"refresh_token": "not-a-real-one"},
        "POST /api/auth/logout": {"refresh_token": "not-a-real-one"},
        "PATCH /api/auth/me": {"full_name": "B", "password": STRONG_PASSWORD + "!", "current_password": "x"},
        "POST /api/{user_id}/tasks": {"title": "t", "description": "d"},
        "PATCH /api/{user_id}/tasks/{task_id}": {"title": "t", "description": "d"},
        "PATCH /api/users/{user_id}": {"full_name": "C"},
        "PUT /api/users/{user_id}": {"full_name": "C"},
        "POST /api/auth/verify-email": {"token": "not-a-real-one"},
        "POST /api/auth/forgot-password": {"email": "someone@example.com"},
        "POST /api/auth/reset-password": {"token": "not-a-real-one", "password": STRONG_PASSWORD + "?"},
        "DELETE /api/auth/me": {"current_password": "x"},
        "POST /api/auth/2fa/totp": {"current_password": "x"},
        "POST /api/auth/2fa/totp/confirm": {"code": "123456"},
        "DELETE /api/auth/2fa/totp": {"code": "123456"},
        "POST /api/auth/2fa/backup-codes": {"current_password": "x"},
        "POST /api/auth/2fa/verify": {"mfa_token": "not-a-real-one", "code": "123456"},
    }


def _valid_body(operation: Operation, owner: Owner) -> dict[str, Any]:
    bodies = _valid_bodies(owner)
    if repr(operation) not in bodies:
        pytest.fail(f"{operation}: add a valid JSON body to _valid_bodies")
    return bodies[repr(operation)]


def _url(operation: Operation, owner: Owner, **overrides: str) -> str:
    return fill_path(operation.path, {**owner.ids, **overrides})


async def _send(
    client: httpx.AsyncClient, operation: Operation, owner: Owner, url: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {**owner.headers, **kwargs.pop("headers", {})}
    return await client.request(operation.method, url or _url(operation, owner), headers=headers, **kwargs)


def _refused(response: httpx.Response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["detail"]


def _ids(operations: list[Operation]) -> list[str]:
    return [repr(operation) for operation in operations]


def _json_attacks(field: str, depth: int = DEPTH) -> dict[str, bytes]:
    """Bodies that are not valid JSON, or not JSON we can store, aimed at one real field so a
    decoder that checks field names first still meets them."""
    name = field.encode()
    return {
        "nested arrays": b"[" * depth + b"]" * depth,
        "nested objects": b'{"a":' * depth + b"1" + b"}" * depth,
        "nested in a field": b'{"' + name + b'": ' + b"[" * depth + b"]" * depth + b"}",
        "invalid UTF-8 in a string": b'{"' + name + b'": "\xff\xfe\xc3("}',
        "an unpaired surrogate": b'{"' + name + b'": "\\ud800"}',
        "a raw NUL byte": b'{"' + name + b'": "a\x00b"}',
        "not an object": b'["' + name + b'"]',
        "truncated": b'{"' + name + b'": "t',
    }


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=_ids(JSON_OPERATIONS))
async def test_malformed_json_is_400(client: httpx.AsyncClient, owner: Owner, operation: Operation) -> None:
    field = next(iter(_valid_body(operation, owner)))
    depth = AUTH_DEPTH if operation.path.startswith("/api/auth/") else DEPTH
    for attack, body in _json_attacks(field, depth).items():
        headers = {"Content-Type": "application/json"}
        response = await _send(client, operation, owner, content=body, headers=headers)
        assert response.status_code == 400, (attack, response.text[:300])
        _refused(response, 400)


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=_ids(JSON_OPERATIONS))
async def test_nul_in_any_string_field_is_refused(
    client: httpx.AsyncClient, owner: Owner, operation: Operation
) -> None:
    body = _valid_body(operation, owner)
    for field, value in body.items():
        poisoned = {**body, field: value[:1] + "\x00" + value[1:]}
        response = await _send(client, operation, owner, json=poisoned)
        if field in HASHED_FIELDS:
            assert response.status_code < 500, (field, response.text)
        else:
            _refused(response, 400)
            assert field in response.json()["detail"], (field, response.text)


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=_ids(JSON_OPERATIONS))
async def test_unknown_fields_are_400_naming_them(
    client: httpx.AsyncClient, owner: Owner, operation: Operation
) -> None:
    body = {**_valid_body(operation, owner), "is_admin": True}
    response = await _send(client, operation, owner, json=body)
    _refused(response, 400)
    assert "is_admin" in response.json()["detail"]


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=_ids(JSON_OPERATIONS))
async def test_json_sent_as_another_type_is_415(
    client: httpx.AsyncClient, owner: Owner, operation: Operation
) -> None:
    body = httpx.Request("POST", "/", json=_valid_body(operation, owner)).content
    for content_type in ("text/plain", "application/xml", "text/html; charset=utf-8", ""):
        response = await _send(client, operation, owner, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 415, (content_type, response.text[:300])
        _refused(response, 415)


class EndlessBody:
    """A body sent chunk by chunk with no Content-Length, counting what the server read."""

    def __init__(self, prefix: bytes = b'{"title": "', chunk: int = 64 * 1024, total: int = 64 * 1024 * 1024):
        self.prefix = prefix
        self.chunk = chunk
        self.total = total
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.prefix
        while self.sent < self.total:
            self.sent += self.chunk
            yield b"x" * self.chunk


def _limit_of(operation: Operation, settings: Settings) -> int:
    return settings.max_upload_bytes + 64 * 1024 if "multipart/form-data" in operation.body_types else 0


@pytest.mark.parametrize("operation", BODY_OPERATIONS, ids=_ids(BODY_OPERATIONS))
async def test_an_endless_body_is_413_before_it_is_buffered(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, operation: Operation
) -> None:
    content_type = operation.body_types[0]
    if content_type == "multipart/form-data":
        prefix = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        content_type += "; boundary=b"
    else:
        prefix = b'{"title": "' if content_type == "application/json" else b"username="
    body = EndlessBody(prefix)
    response = await _send(client, operation, owner, content=body, headers={"Content-Type": content_type})
    _refused(response, 413)
    limit = max(JSON_BODY_LIMIT_BYTES, _limit_of(operation, settings))
    assert body.sent <= limit + body.chunk, "read no further than the limit"


@pytest.mark.parametrize("operation", BODY_OPERATIONS, ids=_ids(BODY_OPERATIONS))
async def test_an_announced_huge_body_is_413_unread(
    client: httpx.AsyncClient, owner: Owner, operation: Operation
) -> None:
    body = EndlessBody(total=0)
    content_type = operation.body_types[0]
    if content_type == "multipart/form-data":
        content_type += "; boundary=b"
    headers = {"Content-Type": content_type, "Content-Length": str(2**40)}
    response = await _send(client, operation, owner, content=body, headers=headers)
    _refused(response, 413)


async def test_a_client_that_leaves_mid_body_is_not_a_server_error(app: Any, owner: Owner) -> None:
    """The client is gone, so nobody reads the answer; but the access log and the metrics would
    count a 500, and an alert on 5xx would wake someone for a flaky mobile network."""
    messages = [
        {"type": "http.request", "body": b'{"title": "half', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/api/{owner.id}/tasks",
        "raw_path": f"/api/{owner.id}/tasks".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", b"100"),
            *[(k.lower().encode(), v.encode()) for k, v in owner.headers.items()],
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400


QUERY_ATTACKS = {
    "negative": "-1",
    "zero": "0",
    "past bigint": str(2**63),
    "40 digits": "1" + "0" * 40,
    "exponent": "1e3",
    "empty": "",
    "NUL": "\x00",
    "invalid UTF-8": "%FF%FE",
    "SQL": "1' OR '1'='1",
    "10 kB": "9" * 10_000,
    "50 kB": "a" * 50_000,
}


@pytest.mark.parametrize("operation", QUERY_OPERATIONS, ids=_ids(QUERY_OPERATIONS))
async def test_hostile_query_values_are_400_or_ignored(
    client: httpx.AsyncClient, owner: Owner, operation: Operation
) -> None:
    for name, schema in operation.query.items():
        for attack, value in QUERY_ATTACKS.items():
            encoded = value if attack == "invalid UTF-8" else quote(value, safe="")
            url = f"{_url(operation, owner)}?{name}={encoded}"
            response = await _send(client, operation, owner, url=url)
            where = (name, attack, response.status_code, response.text[:200])
            assert response.status_code in (200, 400), where
            integer = schema.get("type") == "integer"
            if integer and attack in ("negative", "past bigint", "40 digits", "NUL", "SQL", "50 kB"):
                assert response.status_code == 400, where
            if response.status_code == 400:
                assert name in response.json()["detail"], where


PATH_ATTACKS = {
    "zero": "0",
    "negative": "-1",
    "past bigint": str(2**63),
    "40 digits": "1" + "0" * 40,
    "NUL": "%00",
    "invalid UTF-8": "%FF%FE",
    "SQL": quote("1' OR '1'='1", safe=""),
    "traversal": "..%2F..%2Fetc%2Fpasswd",
    "nil UUID": "00000000-0000-0000-0000-000000000000",
    "5 kB": "7" * 5000,
}


@pytest.mark.parametrize("operation", PATH_OPERATIONS, ids=_ids(PATH_OPERATIONS))
async def test_hostile_path_ids_name_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection, owner: Owner, operation: Operation
) -> None:
    body = {"json": _valid_body(operation, owner)} if operation.takes_json else {}
    tasks_before = await db.fetchval("SELECT count(*) FROM tasks")
    for name in path_parameters(operation.path):
        for attack, value in PATH_ATTACKS.items():
            response = await _send(
                client, operation, owner, url=_url(operation, owner, **{name: value}), **body
            )
            where = (name, attack, response.status_code, response.text[:200])
            _refused(response, 400, 403, 404)
            assert response.status_code != 400 or name in response.json()["detail"], where
    assert await db.fetchval("SELECT count(*) FROM tasks") == tasks_before


SQL_TEXTS = [
    "'); DROP TABLE tasks;--",
    '" OR 1=1; --',
    "1; SELECT pg_sleep(10); --",
    "$1 $$ \\x00 \\ % _ ' '' \\'",
    "Robert'); DELETE FROM users WHERE ('1'='1",
]


async def test_sql_metacharacters_are_data_and_round_trip(
    client: httpx.AsyncClient, db: asyncpg.Connection, owner: Owner
) -> None:
    tasks_url = f"/api/{owner.id}/tasks"
    for text in SQL_TEXTS:
        created = await client.post(
            tasks_url, json={"title": text, "description": text}, headers=owner.headers
        )
        assert created.status_code == 201, created.text
        read = await client.get(f"{tasks_url}/{created.json()['id']}", headers=owner.headers)
        assert (read.json()["title"], read.json()["description"]) == (text, text)
        patched = await client.patch(
            f"{tasks_url}/{created.json()['id']}", json={"title": text[::-1]}, headers=owner.headers
        )
        assert patched.json()["title"] == text[::-1]
        me = await client.patch("/api/auth/me", json={"full_name": text}, headers=owner.headers)
        assert me.json()["full_name"] == text
    listed = await client.get(tasks_url, params={"limit": 200}, headers=owner.headers)
    assert sorted(task["title"] for task in listed.json() if task["title"] != "mine") == sorted(
        text[::-1] for text in SQL_TEXTS
    )
    assert await db.fetchval("SELECT count(*) FROM users") == 1


async def test_an_email_with_sql_metacharacters_registers_and_logs_in(client: httpx.AsyncClient) -> None:
    email = "o'brien+x--@example.com"
    assert (
        await client.post("/api/auth/register", json={"email": email, "password": STRONG_PASSWORD})
    ).status_code == 201
    login = await client.post("/api/auth/login", data={"username": email, "password": STRONG_PASSWORD})
    assert login.status_code == 200
    wrong = await client.post("/api/auth/login", data={"username": "x' OR '1'='1", "password": "' OR ''='"})
    assert wrong.status_code == 401


async def test_duplicate_json_keys_take_the_last_value(client: httpx.AsyncClient, owner: Owner) -> None:
    body = b'{"title": "first", "title": "second", "is_completed": false, "is_completed": true}'
    headers = {**owner.headers, "Content-Type": "application/json"}
    response = await client.post(f"/api/{owner.id}/tasks", content=body, headers=headers)
    assert response.status_code == 201
    assert (response.json()["title"], response.json()["is_completed"]) == ("second", True)


async def test_a_repeated_query_parameter_takes_the_last_value(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    for index in range(3):
        await client.post(f"/api/{owner.id}/tasks", json={"title": f"t{index}"}, headers=owner.headers)
    response = await client.get(f"/api/{owner.id}/tasks?limit=1&limit=3", headers=owner.headers)
    assert len(response.json()) == 3


# Far past 128 characters, but inside the auth routes' 8 KiB body limit (a megabyte is a 413:
# test_hostile_clients), so the password rule itself answers.
OVERLONG_PASSWORD = "p" * 5_000

PASSWORD_REQUESTS: dict[str, Callable[[Owner], dict[str, Any]]] = {
    "register": lambda owner: {
        "method": "POST",
        "url": "/api/auth/register",
        "json": {"email": "big@example.com", "password": OVERLONG_PASSWORD},
    },
    "JSON login": lambda owner: {
        "method": "POST",
        "url": "/api/auth/login",
        "json": {"email": owner.email, "password": OVERLONG_PASSWORD},
    },
    "form login": lambda owner: {
        "method": "POST",
        "url": "/api/auth/login",
        "data": {"username": owner.email, "password": OVERLONG_PASSWORD},
    },
    "password change": lambda owner: {
        "method": "PATCH",
        "url": "/api/auth/me",
        "json": {"password": OVERLONG_PASSWORD, "current_password": STRONG_PASSWORD},
        "headers": owner.headers,
    },
    "current password": lambda owner: {
        "method": "PATCH",
        "url": "/api/auth/me",
        "json": {"password": STRONG_PASSWORD + "!", "current_password": OVERLONG_PASSWORD},
        "headers": owner.headers,
    },
}


@pytest.mark.parametrize("request_of", PASSWORD_REQUESTS.values(), ids=list(PASSWORD_REQUESTS))
async def test_an_overlong_password_is_400_before_any_hashing(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    owner: Owner,
    request_of: Callable[[Owner], dict[str, Any]],
) -> None:
    response = await client.request(**request_of(owner))
    _refused(response, 400)
    assert response.json()["errors"][0]["field"] in ("password", "current_password")
    # Refused while decoding: no failed login was counted, nothing was stored.
    assert await db.fetchval("SELECT count(*) FROM login_failures") == 0
    assert await db.fetchval("SELECT count(*) FROM users") == 1


FORM_ATTACKS: dict[str, tuple[str, bytes]] = {
    "unknown charset": (
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="username"\r\nContent-Type: text/plain; charset=nope'
        b"\r\n\r\nx\r\n--b--\r\n",
    ),
    "invalid UTF-8 in a part": (
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\n\xff\xfe\r\n--b--\r\n',
    ),
    "no boundary": ("multipart/form-data", b"--b--\r\n"),
    "garbage multipart": ("multipart/form-data; boundary=b", b"\x00\xff garbage"),
    "NUL in a field": ("application/x-www-form-urlencoded", b"username=a%00b&password=x&text=a%00b"),
}


FORM_OPERATIONS = [
    operation for operation in BODY_OPERATIONS if set(operation.body_types) - {"application/json"}
]


@pytest.mark.parametrize("operation", FORM_OPERATIONS, ids=_ids(FORM_OPERATIONS))
async def test_undecodable_forms_are_4xx(
    client: httpx.AsyncClient, owner: Owner, operation: Operation
) -> None:
    for attack, (content_type, body) in FORM_ATTACKS.items():
        response = await _send(client, operation, owner, content=body, headers={"Content-Type": content_type})
        assert response.status_code in (400, 401, 415), (attack, response.text[:300])
        _refused(response, 400, 401, 415)


def _raw_status(address: tuple[str, int], request: bytes) -> int:
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(request)
        status_line = connection.makefile("rb").readline()
    return int(status_line.split()[1])


def test_the_http_server_refuses_requests_it_cannot_parse(database_url: str, tmp_path: Path, db: Any) -> None:
    """The HTTP server answers these itself before the app sees them: uvicorn a plain 400 for bytes
    it cannot parse, service.http.protocol a 431 for a request line over HTTP_MAX_HEADER_BYTES;
    the service keeps serving afterwards."""
    with live_service(database_url, tmp_path) as (_, base):
        address = (urlsplit(base).hostname or "", urlsplit(base).port or 0)
        for target, status in (
            (b"/health?x=\xff\xfe", 400),
            (b"/api/\xc3(/tasks", 400),
            (b"/health?x=" + b"a" * 40_000, 431),
        ):
            request = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            assert _raw_status(address, request) == status, target[:40]
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200


async def test_a_bad_path_parameter_is_the_only_error_named(client: httpx.AsyncClient, owner: Owner) -> None:
    response = await client.get(f"/api/{owner.id}/tasks/0", headers=owner.headers)
    _refused(response, 400)
    assert response.json()["errors"] == [
        {"field": "task_id", "message": "Expected `int` >= 1", "source": "path"}
    ]
    listed = await client.get(f"/api/{owner.id}/tasks?limit=0", headers=owner.headers)
    assert [error["source"] for error in listed.json()["errors"]] == ["query"]


async def test_a_scan_file_sent_as_a_text_field_is_named(client: httpx.AsyncClient, owner: Owner) -> None:
    response = await client.post("/api/scan", headers=owner.headers, files={"file": (None, "not a file")})
    _refused(response, 400)
    assert response.json()["errors"][0]["field"] == "file"
    assert "file part" in response.json()["detail"]
