"""A login's session starts in one statement once argon2 has accepted the password
(sql/accounts/start_password_session.sql). What the check relied on may change while argon2 runs:
a password change or a deactivation that commits first wins, and nothing of the session is
written. Made certain with PostgreSQL's own row lock, against the real app and database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.settings import Settings
from tests.accounts.conftest import STRONG_PASSWORD, login, register, waiting_on_a_lock
from tests.conftest import make_settings

EMAIL = "ada@example.com"
BURST = 16
# The first words of sql/accounts/start_password_session.sql (pg_stat_activity keeps 1 kB of it).
SESSION_STATEMENT = "A plain login's second and last statement"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """One address sends the burst: the per-IP auth limit is out of the way. Every attempt is
    counted before its password is checked, so the burst needs a lockout limit above its size."""
    return make_settings(
        database_url, tmp_path, AUTH_RATE_LIMIT_PER_MINUTE="100000", LOGIN_MAX_FAILURES=str(BURST + 10)
    )


async def _written(db: asyncpg.Connection) -> tuple[int, int]:
    """Refresh families and auth.login events stored for the account."""
    sessions = await db.fetchval(
        "SELECT count(*) FROM refresh_tokens r JOIN users u ON u.id = r.user_id WHERE u.email = $1", EMAIL
    )
    logins = await db.fetchval(
        "SELECT count(*) FROM audit_events WHERE action = 'auth.login' AND actor_email = $1", EMAIL
    )
    return sessions, logins


async def _login_while_locked(
    client: httpx.AsyncClient, database_url: str, db: asyncpg.Connection, change: str
) -> httpx.Response:
    """Log in while another transaction holds the account's row with `change` (a statement on
    the account, $1 its email) made; commit the change once the login's session statement waits
    for that row, then return the answer."""
    other = await asyncpg.connect(database_url)
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute(change, EMAIL)
        answer = asyncio.ensure_future(login(client))
        try:
            await waiting_on_a_lock(db, SESSION_STATEMENT)
        except BaseException:
            await transaction.rollback()
            await asyncio.wait_for(answer, 30)
            raise
        await transaction.commit()
        return await asyncio.wait_for(answer, 30)
    finally:
        await other.close()


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        pytest.param(
            "UPDATE users SET password_hash = password_hash || 'changed' WHERE email = $1",
            "incorrect email or password",
            id="password change",
        ),
        pytest.param(
            "UPDATE users SET is_active = false WHERE email = $1",
            "account is not active",
            id="deactivation",
        ),
    ],
)
async def test_a_change_committed_while_the_password_is_checked_wins(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str, change: str, detail: str
) -> None:
    assert (await register(client)).status_code == 201
    before = await _written(db)
    answer = await _login_while_locked(client, database_url, db, change)
    assert answer.status_code == 401, answer.text
    assert answer.json()["detail"] == detail
    assert await _written(db) == before, "no session and no login event"


async def test_a_burst_of_right_passwords_each_gets_its_own_session(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """After two wrong passwords, 16 concurrent right ones: every one gets its own session and
    its own audit event, and the run of failures is over."""
    assert (await register(client)).status_code == 201
    for _ in range(2):
        assert (await login(client, password="wrong " + STRONG_PASSWORD)).status_code == 401
    assert await db.fetchval("SELECT failures FROM login_failures WHERE email = $1", EMAIL) == 2
    answers = await asyncio.gather(*(login(client) for _ in range(BURST)))
    assert [answer.status_code for answer in answers] == [200] * BURST
    assert len({answer.json()["refresh_token"] for answer in answers}) == BURST
    assert len({answer.json()["access_token"] for answer in answers}) == BURST
    assert await _written(db) == (BURST, BURST)
    assert await db.fetchval("SELECT count(*) FROM login_failures WHERE email = $1", EMAIL) == 0
    for answer in answers:
        refreshed = await client.post(
            "/api/auth/refresh", json={"refresh_token": answer.json()["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text


@pytest.mark.timeout(120)
async def test_a_login_held_on_a_locked_account_ends_at_the_statement_deadline(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str
) -> None:
    """The session statement waits for the account's row; a transaction that holds it for
    longer than the statement deadline (asyncpg's command_timeout, 30 s) gets the login a 503
    with Retry-After, not a hang, and nothing of the session is written."""
    assert (await register(client)).status_code == 201
    before = await _written(db)
    holder = await asyncpg.connect(database_url)
    answer: asyncio.Future[httpx.Response] | None = None
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM users WHERE email = $1 FOR UPDATE", EMAIL)
            answer = asyncio.ensure_future(login(client))
            await waiting_on_a_lock(db, SESSION_STATEMENT)
            response = await asyncio.wait_for(answer, 60)
    finally:
        await holder.close()
        if answer is not None and not answer.done():  # a failed step above: no request left behind
            answer.cancel()
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert response.headers["content-type"] == "application/problem+json"
    assert await _written(db) == before, "no session and no login event"
    assert (await login(client)).status_code == 200, "the account logs in once the row is free"
