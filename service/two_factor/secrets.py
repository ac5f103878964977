"""Keys of two-factor sign-in: TOTP secrets encrypted at rest, backup codes and mfa tokens hashed.

The keys come from the environment: MFA_ENCRYPTION_KEY (>= 32 bytes; production refuses to start
without it unless TWO_FACTOR=off) encrypts, and it and every key of MFA_ENCRYPTION_OLD_KEYS
decrypt, so a key is rotated by adding the new one in front and running `service mfa-rotate`
(docs/operations.md). In development and tests, without MFA_ENCRYPTION_KEY, the key is derived
from JWT_SECRET, so a fresh machine works. An AES-256-GCM key is derived from each with
HKDF-SHA256; the user id is the associated data, so a ciphertext copied to another account does
not decrypt.

A ciphertext names its key: version 2 is `02 | key id (4 bytes: the first 8 hex digits of the
key's SHA-256) | nonce | AES-GCM(backup-code key (32 bytes) + secret)`. The backup-code key is
the HMAC key of the account's backup codes (a stolen table cannot be brute-forced without it): it
travels inside the encrypted secret, so re-encrypting a secret under a new key keeps its backup
codes valid after the old key is gone. Version 1 (`01 | nonce | AES-GCM(secret)`, written before
rotation existed) names no key: every key is tried, and its backup-code key is the one derived
from the key that decrypts it, as version 1 hashed them; `service mfa-rotate` rewrites it as
version 2.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import uuid
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.settings import Settings, mfa_key_id

_key_id = functools.cache(mfa_key_id)  # every verify looks its key up by id

_NONCE_BYTES = 12
_VERSION_1 = b"\x01"  # the first byte of a ciphertext: which scheme wrote it
_VERSION_2 = b"\x02"
_KEY_ID_BYTES = 4
_BACKUP_KEY_BYTES = 32
BACKUP_CODE_COUNT = 10
# 10 characters of an alphabet without look-alikes (no 0/O, 1/I/L): 31**10, about 2**50.
_BACKUP_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_BACKUP_LENGTH = 10
MFA_TOKEN_BYTES = 32


class UndecryptableSecret(Exception):
    """The stored secret decrypts with none of this server's keys (MFA_ENCRYPTION_KEY changed)."""


class Secret(NamedTuple):
    """A decrypted TOTP secret and the key of its account's backup codes."""

    totp: str
    backup_key: bytes
    key_id: str  # the key that encrypted it
    current: bool  # encrypted as this server encrypts now: version 2 under MFA_ENCRYPTION_KEY


@functools.cache
def _derived(material: str, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"service two-factor " + purpose)
    return hkdf.derive(material.encode("utf-8"))


def _keys(settings: Settings) -> list[str]:
    """Every key that decrypts, the encrypting one first."""
    if settings.mfa_encryption_key:
        return [settings.mfa_encryption_key, *settings.mfa_encryption_old_keys]
    # Never production (settings.py refuses to start without MFA_ENCRYPTION_KEY there).
    return ["development key from JWT_SECRET:" + settings.jwt_secret, *settings.mfa_encryption_old_keys]


def new_backup_key() -> bytes:
    return os.urandom(_BACKUP_KEY_BYTES)


def encrypt_secret(settings: Settings, user_id: uuid.UUID, secret: str, backup_key: bytes) -> bytes:
    material = _keys(settings)[0]
    header = _VERSION_2 + bytes.fromhex(_key_id(material))
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_derived(material, b"totp secret")).encrypt(
        nonce, backup_key + secret.encode("ascii"), header + user_id.bytes
    )
    return header + nonce + sealed


def decrypt_secret(settings: Settings, user_id: uuid.UUID, ciphertext: bytes) -> Secret:
    keys = _keys(settings)
    if ciphertext[:1] == _VERSION_2:
        header = ciphertext[: 1 + _KEY_ID_BYTES]
        key_id = header[1:].hex()
        material = next((key for key in keys if _key_id(key) == key_id), None)
        if material is None:
            raise UndecryptableSecret(f"the secret was encrypted with key {key_id}, which is not configured")
        nonce, sealed = (
            ciphertext[len(header) : len(header) + _NONCE_BYTES],
            ciphertext[len(header) + _NONCE_BYTES :],
        )
        try:
            plain = AESGCM(_derived(material, b"totp secret")).decrypt(nonce, sealed, header + user_id.bytes)
        except InvalidTag:
            raise UndecryptableSecret(f"the secret does not decrypt with key {key_id}") from None
        backup_key, totp = plain[:_BACKUP_KEY_BYTES], plain[_BACKUP_KEY_BYTES:].decode("ascii")
        return Secret(totp, backup_key, key_id, key_id == _key_id(keys[0]))
    if ciphertext[:1] != _VERSION_1:
        raise UndecryptableSecret("unknown ciphertext version")
    nonce, sealed = ciphertext[1 : 1 + _NONCE_BYTES], ciphertext[1 + _NONCE_BYTES :]
    for material in keys:  # version 1 does not say which key: the tag tells
        try:
            plain = AESGCM(_derived(material, b"totp secret")).decrypt(nonce, sealed, user_id.bytes)
        except InvalidTag:
            continue
        return Secret(plain.decode("ascii"), _derived(material, b"backup code"), _key_id(material), False)
    raise UndecryptableSecret("the secret decrypts with none of the configured keys")


def new_backup_codes() -> list[str]:
    return [
        "".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(_BACKUP_LENGTH))
        for _ in range(BACKUP_CODE_COUNT)
    ]


def normalise_backup_code(code: str) -> str:
    """As typed: case, spaces and dashes do not matter."""
    return code.replace("-", "").replace(" ", "").upper()


def backup_code_hash(backup_key: bytes, user_id: uuid.UUID, code: str) -> bytes:
    message = user_id.bytes + normalise_backup_code(code).encode("utf-8", "surrogatepass")
    return hmac.new(backup_key, message, hashlib.sha256).digest()


def looks_like_backup_code(code: str) -> bool:
    normalised = normalise_backup_code(code)
    return len(normalised) == _BACKUP_LENGTH and all(c in _BACKUP_ALPHABET for c in normalised)


def new_mfa_token() -> tuple[str, bytes]:
    token = secrets.token_urlsafe(MFA_TOKEN_BYTES)
    return token, mfa_token_digest(token)


def mfa_token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
