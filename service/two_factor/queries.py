"""The two-factor queries: each runs one file of sql/two_factor/ (TOTP credentials, backup codes,
login challenges). Spending a step, a code or a challenge is one conditional UPDATE, so each
returns whether it was this call that spent it; the callers open the transactions."""

from __future__ import annotations

import uuid
from typing import TypeAlias

import asyncpg

from service.db.sql import load_sql

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection

START_ENROLMENT = load_sql("two_factor/start_enrolment")
GET_CREDENTIAL = load_sql("two_factor/get_credential")
CONFIRM_ENROLMENT = load_sql("two_factor/confirm_enrolment")
SPEND_STEP = load_sql("two_factor/spend_step")
SPEND_BACKUP_CODE = load_sql("two_factor/spend_backup_code")
DELETE_BACKUP_CODES = load_sql("two_factor/delete_backup_codes")
INSERT_BACKUP_CODES = load_sql("two_factor/insert_backup_codes")
DELETE_CREDENTIAL = load_sql("two_factor/delete_credential")
INSERT_CHALLENGE = load_sql("two_factor/insert_challenge")
FIND_CHALLENGE = load_sql("two_factor/find_challenge")
SPEND_CHALLENGE = load_sql("two_factor/spend_challenge")
LOCK_MFA_USER = load_sql("two_factor/lock_mfa_user")
MFA_ENABLED = load_sql("two_factor/mfa_enabled")
CIPHERTEXTS_AFTER = load_sql("two_factor/ciphertexts_after")
REPLACE_CIPHERTEXTS = load_sql("two_factor/replace_ciphertexts")


async def start_enrolment(connection: asyncpg.Connection, user_id: uuid.UUID, ciphertext: bytes) -> bool:
    """Store a new unconfirmed secret; False when a confirmed one exists (two-factor is on)."""
    return await connection.fetchval(START_ENROLMENT, user_id, ciphertext) is not None


async def get_credential(db: Db, user_id: uuid.UUID) -> asyncpg.Record | None:
    """secret_ciphertext, confirmed, last_step and enrolment_id of the user's TOTP credential."""
    return await db.fetchrow(GET_CREDENTIAL, user_id)


async def confirm_enrolment(
    connection: asyncpg.Connection, user_id: uuid.UUID, step: int, enrolment_id: uuid.UUID
) -> bool:
    """Turn two-factor on if enrolment `enrolment_id` is still the pending one and `step` is new."""
    return await connection.fetchval(CONFIRM_ENROLMENT, user_id, step, enrolment_id) is not None


async def spend_step(connection: asyncpg.Connection, user_id: uuid.UUID, step: int) -> bool:
    return await connection.fetchval(SPEND_STEP, user_id, step) is not None


async def spend_backup_code(
    connection: asyncpg.Connection, user_id: uuid.UUID, code_hash: bytes | None
) -> bool:
    return await connection.fetchval(SPEND_BACKUP_CODE, user_id, code_hash) is not None


async def delete_backup_codes(connection: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await connection.execute(DELETE_BACKUP_CODES, user_id)


async def insert_backup_codes(
    connection: asyncpg.Connection, user_id: uuid.UUID, hashes: list[bytes]
) -> None:
    await connection.execute(INSERT_BACKUP_CODES, user_id, hashes)


async def delete_credential(connection: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await connection.execute(DELETE_CREDENTIAL, user_id)


async def insert_challenge(
    connection: asyncpg.Connection, digest: bytes, user_id: uuid.UUID, lifetime_seconds: int
) -> None:
    await connection.execute(INSERT_CHALLENGE, digest, user_id, lifetime_seconds)


async def find_challenge(db: Db, digest: bytes) -> asyncpg.Record | None:
    """user_id, email, is_active, secret_ciphertext, last_step of a live challenge."""
    return await db.fetchrow(FIND_CHALLENGE, digest)


async def spend_challenge(connection: asyncpg.Connection, digest: bytes) -> bool:
    return await connection.fetchval(SPEND_CHALLENGE, digest) is not None


async def lock_mfa_user(connection: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    """Lock the user's row: is_active and email."""
    return await connection.fetchrow(LOCK_MFA_USER, user_id)


async def mfa_enabled(db: Db, user_id: uuid.UUID) -> bool:
    return bool(await db.fetchval(MFA_ENABLED, user_id))


async def ciphertexts_after(db: Db, after: uuid.UUID | None, limit: int) -> list[asyncpg.Record]:
    """user_id and secret_ciphertext of at most `limit` credentials after `after`, by user id."""
    return list(await db.fetch(CIPHERTEXTS_AFTER, after, limit))


async def replace_ciphertexts(
    db: Db, user_ids: list[uuid.UUID], old: list[bytes], new: list[bytes]
) -> set[uuid.UUID]:
    """Each user's ciphertext `old` becomes `new` where `old` is still stored: the users changed."""
    return {row["user_id"] for row in await db.fetch(REPLACE_CIPHERTEXTS, user_ids, old, new)}
