"""`service mfa-rotate`: re-encrypt every stored two-factor secret under MFA_ENCRYPTION_KEY.

In batches of user ids, each secret that is not yet version 2 under the current key is decrypted
(with MFA_ENCRYPTION_KEY or a key of MFA_ENCRYPTION_OLD_KEYS) and encrypted again under the
current key, keeping its backup-code key, so backup codes stay valid; one UPDATE per batch
replaces a ciphertext only where it is still the one that was read (sql/two_factor/
replace_ciphertexts.sql). An enrolment, a confirmation or another rotation running at the same
time therefore wins over this one for the rows it touches, and nothing it writes is lost: an
enrolment writes under the current key itself, and a confirmation changes other columns (it
requires the pending enrolment's enrolment_id, which a rotation leaves alone, so a rotation never
makes a confirmation fail). Rows that changed under a pass are read again by another pass (at
most MAX_PASSES). Idempotent: a second run finds every secret current and writes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import asyncpg

from service.db.pool import command_pool
from service.settings import Settings
from service.two_factor import queries
from service.two_factor import secrets as keys

BATCH_SIZE = 500
MAX_PASSES = 3


@dataclass
class Rotation:
    examined: int = 0
    reencrypted: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0  # in the last pass: rewritten by someone else between read and write
    undecryptable: list[uuid.UUID] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every secret is under the current key: the old keys may be removed."""
        return not self.undecryptable and not self.changed_meanwhile


async def _one_pass(pool: asyncpg.Pool, settings: Settings, batch_size: int) -> Rotation:
    done = Rotation()
    after: uuid.UUID | None = None
    while rows := await queries.ciphertexts_after(pool, after, batch_size):
        after = rows[-1]["user_id"]
        user_ids: list[uuid.UUID] = []
        old: list[bytes] = []
        new: list[bytes] = []
        for row in rows:
            done.examined += 1
            user_id, ciphertext = row["user_id"], bytes(row["secret_ciphertext"])
            try:
                secret = keys.decrypt_secret(settings, user_id, ciphertext)
            except keys.UndecryptableSecret:
                done.undecryptable.append(user_id)
                continue
            if secret.current:
                done.already_current += 1
                continue
            user_ids.append(user_id)
            old.append(ciphertext)
            new.append(keys.encrypt_secret(settings, user_id, secret.totp, secret.backup_key))
        if user_ids:
            replaced = await queries.replace_ciphertexts(pool, user_ids, old, new)
            done.reencrypted += len(replaced)
            done.changed_meanwhile += len(user_ids) - len(replaced)
    return done


async def rotate(pool: asyncpg.Pool, settings: Settings, batch_size: int = BATCH_SIZE) -> Rotation:
    """Passes until one finds nothing changed under it (at most MAX_PASSES); the counts of the
    rewrites of every pass, and the rest of the last pass."""
    reencrypted = 0
    for _ in range(MAX_PASSES):
        result = await _one_pass(pool, settings, batch_size)
        reencrypted += result.reencrypted
        if not result.changed_meanwhile:
            break
    result.reencrypted = reencrypted
    return result


async def run_once(settings: Settings, database_url: str, batch_size: int = BATCH_SIZE) -> Rotation:
    """`service mfa-rotate`: one rotation on a small pool of its own."""
    async with command_pool(settings, database_url) as pool:
        return await rotate(pool, settings, batch_size)
