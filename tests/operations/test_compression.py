"""gzip for large answers, for clients that accept it, never under /api/auth (BREACH)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.app import STATIC_DIR, create_app
from service.http.compression import _accepts_gzip
from tests.accounts.conftest import STRONG_PASSWORD
from tests.conftest import bearer, caught_up_first, make_settings, make_user, running

Opener = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}  # httpx itself would ask for gzip


@pytest.fixture
def open_client(database_url: str, tmp_path: Path, db: asyncpg.Connection) -> Opener:
    @asynccontextmanager
    async def opened(**env: str) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(database_url, tmp_path, **env))
        async with running(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver", event_hooks=caught_up_first(app)
            ) as client:
                yield client

    return opened


async def _raw(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
    """The answer and its body as sent, before httpx decodes any content coding."""
    async with client.stream("GET", url, headers=headers) as response:
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


async def test_a_large_task_list_is_gzipped_with_its_own_etag(
    open_client: Opener, db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    user = await make_user(db)
    auth = bearer(make_settings(database_url, tmp_path), user)
    await db.executemany(
        "INSERT INTO tasks (user_id, title, description) VALUES ($1, $2, $3)",
        [(user, f"Task {n}", "Call the supplier about the delivery window. " * 3) for n in range(100)],
    )
    url = f"/api/{user}/tasks?limit=100"
    async with open_client() as client:
        plain, plain_body = await _raw(client, url, {**auth, **IDENTITY})
        packed, packed_body = await _raw(client, url, {**auth, **GZIP})
        assert "content-encoding" not in plain.headers
        assert packed.headers["content-encoding"] == "gzip"
        assert gzip.decompress(packed_body) == plain_body
        assert len(packed_body) * 5 < len(plain_body), (len(packed_body), len(plain_body))
        assert int(packed.headers["content-length"]) == len(packed_body)
        assert "Accept-Encoding" in packed.headers["vary"]
        assert packed.headers["etag"] == plain.headers["etag"][:-1] + '-gzip"', "another representation"
        assert packed.headers["x-total-count"] == "100"

        for held in (plain.headers["etag"], packed.headers["etag"]):
            again = await client.get(url, headers={**auth, **GZIP, "If-None-Match": held})
            assert again.status_code == 304, held
            assert "content-encoding" not in again.headers

        for refused in ("gzip;q=0", "identity", "br", "*;q=0", "gzip;q=0, *"):
            response, _ = await _raw(client, url, {**auth, "Accept-Encoding": refused})
            assert "content-encoding" not in response.headers, refused
        for accepted in ("*", "deflate, gzip;q=0.5", "GZIP", "br;q=1, *;q=0.1"):
            response, _ = await _raw(client, url, {**auth, "Accept-Encoding": accepted})
            assert response.headers.get("content-encoding") == "gzip", accepted

        small, _ = await _raw(client, f"/api/{user}/tasks?limit=1", {**auth, **GZIP})
        assert "content-encoding" not in small.headers, "below COMPRESSION_MIN_BYTES"


async def test_a_tag_from_a_compressed_answer_works_in_if_match(
    open_client: Opener, db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    user = await make_user(db)
    auth = bearer(make_settings(database_url, tmp_path), user)
    async with open_client(COMPRESSION_MIN_BYTES="1") as client:
        created = await client.post(f"/api/{user}/tasks", json={"title": "small"}, headers=auth)
        fetched = await client.get(created.headers["location"], headers={**auth, **GZIP})
        assert fetched.headers["content-encoding"] == "gzip"
        tag = fetched.headers["etag"]
        assert tag.endswith('-gzip"')
        changed = await client.patch(
            created.headers["location"], json={"title": "changed"}, headers={**auth, **GZIP, "If-Match": tag}
        )
        assert changed.status_code == 200
        stale = await client.patch(
            created.headers["location"], json={"title": "again"}, headers={**auth, "If-Match": tag}
        )
        assert stale.status_code == 412


async def test_nothing_under_api_auth_is_compressed(open_client: Opener) -> None:
    """Those answers carry tokens: compressed beside attacker-chosen input they would leak
    through their length (BREACH). Checked with a 1-byte threshold, so size is not the reason."""
    async with open_client(COMPRESSION_MIN_BYTES="1") as client:
        account = {"email": "breach@example.com", "password": STRONG_PASSWORD}
        for prefix in ("/api", "/api/v1"):
            registered = await client.post(f"{prefix}/auth/register", json=account, headers=GZIP)
            login = await client.post(
                f"{prefix}/auth/login",
                data={"username": account["email"], "password": STRONG_PASSWORD},
                headers=GZIP,
            )
            token = login.json()["access_token"]
            headers = {**GZIP, "Authorization": f"Bearer {token}"}
            me = await client.get(f"{prefix}/auth/me", headers=headers)
            sessions = await client.get(f"{prefix}/auth/sessions", headers=headers)
            refreshed = await client.post(
                f"{prefix}/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}, headers=GZIP
            )
            for response in (registered, login, me, sessions, refreshed):
                assert response.status_code in (200, 201, 409), response.text
                assert "content-encoding" not in response.headers, response.url
        elsewhere = await client.get("/api/no-such-thing", headers=GZIP)
        assert elsewhere.headers["content-encoding"] == "gzip", "the same threshold applies elsewhere"


async def test_streamed_answers_are_compressed_as_they_stream(open_client: Opener) -> None:
    script = STATIC_DIR / "swagger-ui" / "swagger-ui-bundle.js"
    async with open_client() as client:
        response, body = await _raw(client, "/static/swagger-ui/swagger-ui-bundle.js", GZIP)
    assert response.headers["content-encoding"] == "gzip"
    assert "content-length" not in response.headers
    assert gzip.decompress(body) == script.read_bytes()


async def test_zero_turns_compression_off(open_client: Opener) -> None:
    async with open_client(COMPRESSION_MIN_BYTES="0") as client:
        response, _ = await _raw(client, "/schema/openapi.json", GZIP)
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("gzip;q=0.001", True),
        ("gzip; q=0", False),
        ("gzip;q=0.0", False),
        ("x-gzip", True),
        ("*", True),
        ("*;q=0", False),
        ("br, *", True),
        ("gzip;q=0, *;q=1", False),
        ("gzip;q=nonsense", False),
        ("", False),
        ("identity", False),
    ],
)
def test_accept_encoding_is_read_with_its_q_values(header: str, accepted: bool) -> None:
    assert _accepts_gzip(header) is accepted
