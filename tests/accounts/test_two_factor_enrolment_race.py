"""Confirming an enrolment while the user enrols again (a second tab, a double click): two-factor
goes on only with the secret the confirmation's code was checked against, never with the secret
that replaced it; and a key rotation in the middle of a confirmation does not spoil it. Against the
real app and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.settings import Settings
from service.two_factor import queries
from service.two_factor import secrets as keys
from tests.accounts.conftest import STRONG_PASSWORD, auth, login, register, waiting_on_a_lock
from tests.accounts.two_factor import challenge, code_at, verify, wait_clear_of_step_boundary
from tests.conftest import make_settings, serving

ROUNDS = 24
ENROLMENT_REPLACED = "the authenticator being enrolled changed"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """One address sends everything (the per-IP limit is out of the way) and a confirmation that
    loses the race to an enrolment may count a failed code each round (the lockout too)."""
    return make_settings(
        database_url, tmp_path, AUTH_RATE_LIMIT_PER_MINUTE="100000", LOGIN_MAX_FAILURES="1000"
    )


async def _enrol(client: httpx.AsyncClient, access: str) -> httpx.Response:
    return await client.post(
        "/api/auth/2fa/totp", json={"current_password": STRONG_PASSWORD}, headers=auth(access)
    )


async def _confirm(client: httpx.AsyncClient, access: str, code: str) -> httpx.Response:
    return await client.post("/api/auth/2fa/totp/confirm", json={"code": code}, headers=auth(access))


async def _stored(db: asyncpg.Connection, settings: Settings) -> tuple[str, bool]:
    """The account's stored authenticator secret (decrypted) and whether two-factor is on."""
    row = await db.fetchrow(
        "SELECT user_id, secret_ciphertext, confirmed_at IS NOT NULL AS on FROM totp_credentials"
    )
    assert row is not None
    return keys.decrypt_secret(settings, row["user_id"], row["secret_ciphertext"]).totp, row["on"]


async def test_an_enrolment_between_a_confirmations_check_and_its_update_is_not_turned_on(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection, database_url: str
) -> None:
    """The interleaving, made certain with PostgreSQL's own locks: the confirmation reads the
    pending secret A and checks A's code; an enrolment replaces A with B; only then does the
    confirmation's UPDATE run. It must not turn two-factor on with B, which no code proved."""
    assert (await register(client)).status_code == 201
    access = (await login(client)).json()["access_token"]
    first = await _enrol(client, access)
    assert first.status_code == 200
    secret_a = first.json()["secret"]
    wait_clear_of_step_boundary(10)

    # While this transaction holds the audit log in SHARE mode, the enrolment stops at its audit
    # event: B is written but not committed, and the row stays locked by it.
    gate = await asyncpg.connect(database_url)
    try:
        holding = gate.transaction()
        await holding.start()
        await gate.execute("LOCK TABLE audit_events IN SHARE MODE")
        enrolment = asyncio.create_task(_enrol(client, access))
        await waiting_on_a_lock(db, "audit_events")
        # The confirmation reads A (the committed row), checks A's code against it and then waits
        # in its UPDATE for the enrolment's row lock.
        confirmation = asyncio.create_task(_confirm(client, access, code_at(secret_a, 0)))
        await waiting_on_a_lock(db, "confirmed_at = now()")
        await holding.rollback()
        enrolled_again, confirmed = await asyncio.gather(enrolment, confirmation)
    finally:
        await gate.close()

    assert enrolled_again.status_code == 200, enrolled_again.text
    secret_b = enrolled_again.json()["secret"]
    assert confirmed.status_code == 409, confirmed.text
    assert ENROLMENT_REPLACED in confirmed.json()["detail"]
    assert await _stored(db, settings) == (secret_b, False)
    me = (await client.get("/api/auth/me", headers=auth(access))).json()
    assert me["mfa_enabled"] is False
    assert await db.fetchval("SELECT count(*) FROM backup_codes") == 0

    # As the answer says: a code from the new authenticator turns two-factor on, with B.
    again = await _confirm(client, access, code_at(secret_b, 0))
    assert again.status_code == 200, again.text
    signed_in = await verify(client, (await challenge(client))["mfa_token"], code_at(secret_b, 1))
    assert signed_in.status_code == 200, signed_in.text
    refused = await verify(client, (await challenge(client))["mfa_token"], code_at(secret_a, 1))
    assert refused.status_code == 401


async def test_confirmations_racing_enrolments_turn_on_only_the_secret_they_proved(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    """Many rounds of a confirmation with a valid code of the pending secret A, started at varied
    offsets into a concurrent enrolment (whose password check comes first) that replaces A with B.
    Never do both succeed; when two-factor is on, it is on with A."""
    assert (await register(client)).status_code == 201
    access = (await login(client)).json()["access_token"]

    started = time.monotonic()
    assert (await _enrol(client, access)).status_code == 200
    enrolment_seconds = time.monotonic() - started

    outcomes: list[tuple[int, int]] = []
    for round_number in range(ROUNDS):
        pending = await _enrol(client, access)
        assert pending.status_code == 200, pending.text
        secret_a = pending.json()["secret"]
        wait_clear_of_step_boundary(5)
        offset = enrolment_seconds * 1.3 * round_number / ROUNDS

        async def confirm_later(code: str, delay: float) -> httpx.Response:
            await asyncio.sleep(delay)
            return await _confirm(client, access, code)

        enrolled_again, confirmed = await asyncio.gather(
            _enrol(client, access), confirm_later(code_at(secret_a, 0), offset)
        )
        outcome = (enrolled_again.status_code, confirmed.status_code)
        outcomes.append(outcome)
        assert outcome != (200, 200), f"round {round_number}: both the enrolment and the confirmation won"
        stored, on = await _stored(db, settings)
        if confirmed.status_code == 200:
            # The confirmation came first: the enrolment found two-factor on and changed nothing.
            assert enrolled_again.status_code == 409, enrolled_again.text
            assert (stored, on) == (secret_a, True)
            turn_off = await client.request(
                "DELETE",
                "/api/auth/2fa/totp",
                json={"current_password": STRONG_PASSWORD},
                headers=auth(access),
            )
            assert turn_off.status_code == 204, turn_off.text
        else:
            # The enrolment won: B is pending, nothing is on; the confirmation said why.
            assert enrolled_again.status_code == 200, enrolled_again.text
            assert (stored, on) == (enrolled_again.json()["secret"], False)
            if confirmed.status_code == 409:
                assert ENROLMENT_REPLACED in confirmed.json()["detail"]
            else:  # it read B and checked A's code against it
                assert confirmed.status_code == 400, confirmed.text
    # Each round ended with two-factor off (turned off after a confirmation that won).
    assert (await client.get("/api/auth/me", headers=auth(access))).json()["mfa_enabled"] is False
    print("(enrolment, confirmation) answers:", Counter(outcomes))


async def test_a_key_rotation_between_a_confirmations_check_and_its_update_keeps_it_valid(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """`service mfa-rotate` rewrites the pending ciphertext (same secret, new key) after the
    confirmation read it and before its UPDATE: the confirmation still turns two-factor on, with
    that secret, now under the new key."""
    old_key, new_key = "old two-factor key " + "o" * 32, "new two-factor key " + "n" * 32
    before = make_settings(database_url, tmp_path, MFA_ENCRYPTION_KEY=old_key)
    during = make_settings(
        database_url,
        tmp_path,
        MFA_ENCRYPTION_KEY=new_key,
        MFA_ENCRYPTION_OLD_KEYS=old_key,
        AUTH_RATE_LIMIT_PER_MINUTE="100000",
    )
    async with serving(before) as client:
        assert (await register(client)).status_code == 201
        access = (await login(client)).json()["access_token"]
        enrolment = await _enrol(client, access)
        assert enrolment.status_code == 200
        secret = enrolment.json()["secret"]

    row = await db.fetchrow("SELECT user_id, secret_ciphertext FROM totp_credentials")
    assert row is not None
    user_id, ciphertext = row["user_id"], bytes(row["secret_ciphertext"])
    read = keys.decrypt_secret(during, user_id, ciphertext)
    rotated = keys.encrypt_secret(during, user_id, read.totp, read.backup_key)
    async with serving(during) as client:
        wait_clear_of_step_boundary(10)
        gate = await asyncpg.connect(database_url)
        try:
            holding = gate.transaction()
            await holding.start()
            # The rotation's own UPDATE (rotation.py), left uncommitted: it holds the row.
            assert await queries.replace_ciphertexts(gate, [user_id], [ciphertext], [rotated]) == {user_id}
            confirmation = asyncio.create_task(_confirm(client, access, code_at(secret, 0)))
            await waiting_on_a_lock(db, "confirmed_at = now()")
            await holding.commit()
            confirmed = await confirmation
        finally:
            await gate.close()
        assert confirmed.status_code == 200, confirmed.text
        stored = await db.fetchval("SELECT secret_ciphertext FROM totp_credentials")
        assert bytes(stored) == rotated
        assert await _stored(db, during) == (secret, True)
        signed_in = await verify(client, (await challenge(client))["mfa_token"], code_at(secret, 1))
        assert signed_in.status_code == 200, signed_in.text
        backup = confirmed.json()["backup_codes"][0]  # made with the secret's own backup key
        assert (await verify(client, (await challenge(client))["mfa_token"], backup)).status_code == 200
