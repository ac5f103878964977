"""Keys of two-factor sign-in: TOTP secrets encrypted at rest, backup codes and mfa tokens hashed.

One key from the environment, MFA_ENCRYPTION_KEY (>= 32 bytes, required in production); in
development and tests it is derived from JWT_SECRET, so a fresh machine works. Two keys are
derived from it with HKDF-SHA256: an AES-256-GCM key for the secrets (the user id is the
associated data, so a ciphertext copied to another account does not decrypt) and an HMAC key
for backup codes (a stolen table cannot be brute-forced without the key).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.settings import Settings

_NONCE_BYTES = 12
_VERSION = b"\x01"  # the first byte of a ciphertext: which scheme wrote it
BACKUP_CODE_COUNT = 10
# 10 characters of an alphabet without look-alikes (no 0/O, 1/I/L): 31**10, about 2**50.
_BACKUP_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_BACKUP_LENGTH = 10
MFA_TOKEN_BYTES = 32


class UndecryptableSecret(Exception):
    """The stored secret does not decrypt with this key (MFA_ENCRYPTION_KEY changed)."""


@functools.cache
def _derived(material: str, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"service two-factor " + purpose)
    return hkdf.derive(material.encode("utf-8"))


def _material(settings: Settings) -> str:
    if settings.mfa_encryption_key:
        return settings.mfa_encryption_key
    return "development key from JWT_SECRET:" + settings.jwt_secret  # never production (settings.py)


def encrypt_secret(settings: Settings, user_id: uuid.UUID, secret: str) -> bytes:
    key = _derived(_material(settings), b"totp secret")
    nonce = os.urandom(_NONCE_BYTES)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, secret.encode("ascii"), user_id.bytes)


def decrypt_secret(settings: Settings, user_id: uuid.UUID, ciphertext: bytes) -> str:
    key = _derived(_material(settings), b"totp secret")
    if ciphertext[:1] != _VERSION:
        raise UndecryptableSecret("unknown ciphertext version")
    nonce, sealed = ciphertext[1 : 1 + _NONCE_BYTES], ciphertext[1 + _NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, sealed, user_id.bytes).decode("ascii")
    except InvalidTag:
        raise UndecryptableSecret("the secret does not decrypt with MFA_ENCRYPTION_KEY") from None


def new_backup_codes() -> list[str]:
    return [
        "".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(_BACKUP_LENGTH))
        for _ in range(BACKUP_CODE_COUNT)
    ]


def normalise_backup_code(code: str) -> str:
    """As typed: case, spaces and dashes do not matter."""
    return code.replace("-", "").replace(" ", "").upper()


def backup_code_hash(settings: Settings, user_id: uuid.UUID, code: str) -> bytes:
    key = _derived(_material(settings), b"backup code")
    message = user_id.bytes + normalise_backup_code(code).encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).digest()


def looks_like_backup_code(code: str) -> bool:
    normalised = normalise_backup_code(code)
    return len(normalised) == _BACKUP_LENGTH and all(c in _BACKUP_ALPHABET for c in normalised)


def new_mfa_token() -> tuple[str, bytes]:
    token = secrets.token_urlsafe(MFA_TOKEN_BYTES)
    return token, mfa_token_digest(token)


def mfa_token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
