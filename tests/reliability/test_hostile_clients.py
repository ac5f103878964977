"""Issue 16, hostile clients: patterns that mean one thing in Python and ECMAScript, and no
database driver text in any answer (docs/reliability.md, "Issue 16: hostile clients")."""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import pkgutil
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Request, get
from litestar.params import FromPath

import service
from service.app import create_app
from service.patterns import END_OF_STRING
from service.settings import Settings
from tests.conftest import bearer, make_user, running
from tests.reliability.routes import built_app
from tests.system_tools import require_tool

PROBLEM_JSON = "application/problem+json"
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
    assert loose == [], "use service.patterns.whole(): Python's `$` matches before a final newline"


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
