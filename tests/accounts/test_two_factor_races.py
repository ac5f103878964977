"""Two-factor codes and mfa tokens under concurrent use, against a served app with two worker
processes on one database: only PostgreSQL can make a code single use here."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from tests.accounts.conftest import auth, login, register
from tests.accounts.two_factor import challenge, code_at, enrolled, verify, wait_clear_of_step_boundary
from tests.processes import ServiceProcess, serve

BURST = 10


@pytest.fixture(scope="module")
def host(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    # Each of a burst's logins counts on the lockout until a code is accepted: room for all of them.
    with serve(
        database_url, tmp_path_factory.mktemp("host"), WEB_CONCURRENCY="2", LOGIN_MAX_FAILURES="1000"
    ) as h:
        yield h
        assert "Traceback" not in h.output(), h.output()


@pytest.fixture
async def client(host: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=host.url, timeout=60, limits=httpx.Limits(max_connections=BURST + 4)
    ) as opened:
        yield opened


@pytest.fixture
async def db(database_url: str, table_names: list[str]) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    await connection.execute(f"TRUNCATE {', '.join(table_names)} RESTART IDENTITY CASCADE")
    try:
        yield connection
    finally:
        await connection.close()


async def _enrolled_user(client: httpx.AsyncClient, email: str) -> tuple[str, list[str]]:
    assert (await register(client, email)).status_code == 201
    access = (await login(client, email)).json()["access_token"]
    return await enrolled(client, access)


async def _sessions(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(DISTINCT family_id) FROM refresh_tokens"))


async def test_one_totp_code_used_ten_times_at_once_signs_in_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    secret, _ = await _enrolled_user(client, "ada@example.com")
    tokens = [(await challenge(client))["mfa_token"] for _ in range(BURST)]
    before = await _sessions(db)
    wait_clear_of_step_boundary(margin=8)
    code = code_at(secret, 0)
    answers = await asyncio.gather(*(verify(client, token, code) for token in tokens))
    assert Counter(a.status_code for a in answers) == {200: 1, 401: BURST - 1}
    winner = next(a for a in answers if a.status_code == 200).json()
    assert (await client.get("/api/auth/me", headers=auth(winner["access_token"]))).status_code == 200
    assert await _sessions(db) == before + 1


async def test_one_backup_code_used_ten_times_at_once_signs_in_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    _, codes = await _enrolled_user(client, "ada@example.com")
    tokens = [(await challenge(client))["mfa_token"] for _ in range(BURST)]
    before = await _sessions(db)
    answers = await asyncio.gather(*(verify(client, token, codes[0]) for token in tokens))
    assert Counter(a.status_code for a in answers) == {200: 1, 401: BURST - 1}
    assert await _sessions(db) == before + 1
    assert await db.fetchval("SELECT count(*) FROM backup_codes WHERE used_at IS NOT NULL") == 1


async def test_one_mfa_token_used_twice_at_once_signs_in_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Two valid codes (an authenticator code and a backup code) for one challenge: one session."""
    secret, codes = await _enrolled_user(client, "ada@example.com")
    mfa_token = (await challenge(client))["mfa_token"]
    before = await _sessions(db)
    wait_clear_of_step_boundary(margin=8)
    answers = await asyncio.gather(
        verify(client, mfa_token, code_at(secret, 0)), verify(client, mfa_token, codes[0])
    )
    assert sorted(a.status_code for a in answers) == [200, 401]
    assert await _sessions(db) == before + 1
    assert await db.fetchval("SELECT count(*) FROM mfa_challenges WHERE used_at IS NOT NULL") == 1
