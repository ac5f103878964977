"""Two-factor encryption keys: a secret made under an old key still signs in once a new key is
added, `service mfa-rotate` re-encrypts every secret under the new key (backup codes included),
after which the old key can go; rotations run at once with each other and with enrolments and
confirmations lose nothing. Against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pyotp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.db.pool import create_pool
from service.settings import Settings, mfa_key_id
from service.two_factor import secrets as keys
from service.two_factor.rotation import rotate
from tests.accounts.conftest import STRONG_PASSWORD, auth, login, register
from tests.accounts.two_factor import challenge, code_at, enrolled, verify, wait_clear_of_step_boundary
from tests.conftest import make_settings, make_user, serving
from tests.processes import service_environment

OLD_KEY = "old two-factor key " + "o" * 32
NEW_KEY = "new two-factor key " + "n" * 32


def _settings(database_url: str, tmp_path: Path, key: str, old_keys: str = "") -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        MFA_ENCRYPTION_KEY=key,
        MFA_ENCRYPTION_OLD_KEYS=old_keys,
        AUTH_RATE_LIMIT_PER_MINUTE="100000",
    )


async def _signs_in(client: httpx.AsyncClient, code: str) -> None:
    response = await verify(client, (await challenge(client))["mfa_token"], code)
    assert response.status_code == 200, response.text


def _key_ids(ciphertexts: list[bytes]) -> set[str]:
    return {bytes(c)[1:5].hex() if bytes(c)[:1] == b"\x02" else "version 1" for c in ciphertexts}


async def _ciphertexts(db: asyncpg.Connection) -> list[bytes]:
    return [
        row["secret_ciphertext"] for row in await db.fetch("SELECT secret_ciphertext FROM totp_credentials")
    ]


async def test_old_key_signs_in_rotation_moves_every_secret_and_the_old_key_can_go(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    before = _settings(database_url, tmp_path, OLD_KEY)
    during = _settings(database_url, tmp_path, NEW_KEY, OLD_KEY)
    after = _settings(database_url, tmp_path, NEW_KEY)
    async with serving(before) as client:
        assert (await register(client)).status_code == 201
        secret, backup_codes = await enrolled(client, (await login(client)).json()["access_token"])
    assert _key_ids(await _ciphertexts(db)) == {mfa_key_id(OLD_KEY)}
    # More secrets under the old key than one batch holds.
    for _ in range(25):
        user_id = await make_user(db)
        ciphertext = keys.encrypt_secret(before, user_id, pyotp.random_base32(), keys.new_backup_key())
        await db.execute(
            "INSERT INTO totp_credentials (user_id, secret_ciphertext) VALUES ($1, $2)", user_id, ciphertext
        )

    async with serving(during) as client:
        await _signs_in(client, code_at(secret, 0))  # the new key is added: the old one still reads

    pool = await create_pool(during, database_url)
    try:
        first = await rotate(pool, during, batch_size=7)
        second = await rotate(pool, during, batch_size=7)
    finally:
        await pool.close()
    assert (first.examined, first.reencrypted, first.complete) == (26, 26, True)
    assert (second.reencrypted, second.already_current, second.complete) == (0, 26, True)  # idempotent
    assert _key_ids(await _ciphertexts(db)) == {mfa_key_id(NEW_KEY)}

    async with serving(after) as client:  # the old key is gone
        wait_clear_of_step_boundary()
        await _signs_in(client, code_at(secret, 1))
        await _signs_in(client, backup_codes[0])  # backup codes survive the rotation


def _version_1(key: str, user_id: uuid.UUID, secret: str) -> bytes:
    """A ciphertext as the service wrote it before key ids: 01 | nonce | AES-GCM(secret)."""
    nonce = os.urandom(12)
    sealed = AESGCM(keys._derived(key, b"totp secret")).encrypt(nonce, secret.encode(), user_id.bytes)
    return b"\x01" + nonce + sealed


async def test_a_secret_stored_before_key_ids_is_read_and_rotated_with_its_backup_codes(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    before = _settings(database_url, tmp_path, OLD_KEY)
    during = _settings(database_url, tmp_path, NEW_KEY, OLD_KEY)
    async with serving(before) as client:
        assert (await register(client)).status_code == 201
        secret, backup_codes = await enrolled(client, (await login(client)).json()["access_token"])
    user_id = await db.fetchval("SELECT id FROM users")
    # Rewritten as version 1 stored them: the secret alone, backup codes under a key derived from it.
    await db.execute(
        "UPDATE totp_credentials SET secret_ciphertext = $1", _version_1(OLD_KEY, user_id, secret)
    )
    legacy = keys._derived(OLD_KEY, b"backup code")
    hashes = [keys.backup_code_hash(legacy, user_id, code) for code in backup_codes]
    await db.execute("DELETE FROM backup_codes")
    await db.execute(
        "INSERT INTO backup_codes (user_id, code_hash) SELECT $1, unnest($2::bytea[])", user_id, hashes
    )
    assert _key_ids(await _ciphertexts(db)) == {"version 1"}

    pool = await create_pool(during, database_url)
    try:
        done = await rotate(pool, during)
    finally:
        await pool.close()
    assert (done.reencrypted, done.complete) == (1, True)
    assert _key_ids(await _ciphertexts(db)) == {mfa_key_id(NEW_KEY)}
    async with serving(_settings(database_url, tmp_path, NEW_KEY)) as client:
        wait_clear_of_step_boundary()
        await _signs_in(client, code_at(secret, 0))
        await _signs_in(client, backup_codes[1])


async def test_two_rotations_at_once_with_enrolments_and_confirmations_lose_nothing(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    before = _settings(database_url, tmp_path, OLD_KEY)
    during = _settings(database_url, tmp_path, NEW_KEY, OLD_KEY)
    # 300 secrets under the old key, and 6 accounts of ours with a pending enrolment under it.
    planted: dict[uuid.UUID, tuple[str, bytes]] = {}
    for _ in range(300):
        user_id = await make_user(db)
        planted[user_id] = (pyotp.random_base32(), keys.new_backup_key())
        ciphertext = keys.encrypt_secret(before, user_id, *planted[user_id])
        await db.execute(
            "INSERT INTO totp_credentials (user_id, secret_ciphertext) VALUES ($1, $2)", user_id, ciphertext
        )
    emails = [f"user{number}@example.com" for number in range(6)]
    tokens: dict[str, str] = {}
    pending: dict[str, str] = {}
    async with serving(before) as client:
        for email in emails:
            assert (await register(client, email)).status_code == 201
            tokens[email] = (await login(client, email)).json()["access_token"]
            enrolment = await client.post(
                "/api/auth/2fa/totp", json={"current_password": STRONG_PASSWORD}, headers=auth(tokens[email])
            )
            pending[email] = enrolment.json()["secret"]

    async with serving(during) as client:
        pools = [await create_pool(during, database_url) for _ in range(2)]
        try:
            wait_clear_of_step_boundary(10)

            async def enrol_again(email: str) -> str:
                response = await client.post(
                    "/api/auth/2fa/totp",
                    json={"current_password": STRONG_PASSWORD},
                    headers=auth(tokens[email]),
                )
                assert response.status_code == 200, response.text
                secret: str = response.json()["secret"]
                return secret

            async def confirm(email: str) -> None:
                response = await client.post(
                    "/api/auth/2fa/totp/confirm",
                    json={"code": code_at(pending[email], 0)},
                    headers=auth(tokens[email]),
                )
                assert response.status_code == 200, response.text

            results = await asyncio.gather(
                rotate(pools[0], during, batch_size=10),
                rotate(pools[1], during, batch_size=10),
                *(enrol_again(email) for email in emails[:3]),
                *(confirm(email) for email in emails[3:]),
            )
        finally:
            for pool in pools:
                await pool.close()
    first, second = results[0], results[1]
    assert first.complete
    assert second.complete
    # Each secret under the old key was rewritten once, by one of the two (a pending one that an
    # enrolment replaced first, by neither): the 300, and 3 to 6 of the pending ones.
    assert 303 <= first.reencrypted + second.reencrypted <= 306
    new_secrets = dict(zip(emails[:3], results[2:5], strict=True))

    only_new = _settings(database_url, tmp_path, NEW_KEY)
    rows = await db.fetch(
        "SELECT u.email, t.user_id, t.secret_ciphertext, t.confirmed_at IS NOT NULL AS confirmed"
        " FROM totp_credentials t JOIN users u ON u.id = t.user_id"
    )
    assert _key_ids([row["secret_ciphertext"] for row in rows]) == {mfa_key_id(NEW_KEY)}
    for row in rows:
        secret = keys.decrypt_secret(only_new, row["user_id"], row["secret_ciphertext"])
        if row["user_id"] in planted:
            assert (secret.totp, secret.backup_key) == planted[row["user_id"]]
        elif row["email"] in new_secrets:  # the enrolment's secret, not the one it replaced
            assert (secret.totp, row["confirmed"]) == (new_secrets[row["email"]], False)
        else:  # the confirmation stands, with the secret it confirmed
            assert (secret.totp, row["confirmed"]) == (pending[row["email"]], True)


def test_the_command_rotates_and_says_so(database_url: str, tmp_path: Path) -> None:
    def run(batch_size: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", "mfa-rotate", "--batch-size", batch_size],
            env=service_environment(
                database_url, tmp_path, MFA_ENCRYPTION_KEY=NEW_KEY, MFA_ENCRYPTION_OLD_KEYS=OLD_KEY
            ),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    done = run("2")
    assert done.returncode == 0, done.stderr
    assert f"re-encrypted under key {mfa_key_id(NEW_KEY)}" in done.stdout
    assert run("0").returncode == 2  # argparse refuses a batch of nothing


async def test_a_secret_no_configured_key_reads_makes_the_command_fail(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    user_id = await make_user(db)
    lost = _settings(database_url, tmp_path, "a lost key " + "l" * 32)
    ciphertext = keys.encrypt_secret(lost, user_id, pyotp.random_base32(), keys.new_backup_key())
    await db.execute(
        "INSERT INTO totp_credentials (user_id, secret_ciphertext) VALUES ($1, $2)", user_id, ciphertext
    )
    during = _settings(database_url, tmp_path, NEW_KEY, OLD_KEY)
    pool = await create_pool(during, database_url)
    try:
        done = await rotate(pool, during)
    finally:
        await pool.close()
    assert done.undecryptable == [user_id]
    assert not done.complete
    assert await db.fetchval("SELECT secret_ciphertext FROM totp_credentials") == ciphertext
