"""Two-factor sign-in with an authenticator app (TOTP, RFC 6238) and single-use backup codes.

Every code is accepted once: a TOTP code by moving the account's `last_step` forward in one
UPDATE (sql/two_factor/spend_step.sql), a backup code by marking it used in one UPDATE; the
row lock makes concurrent uses of one code wait and then find it spent. Every code check is
counted on the account's login lockout before the code is checked (the same atomic counter as
passwords), so guesses are bounded however many arrive at once.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal, NamedTuple, TypeVar, cast

import asyncpg
import pyotp
from litestar.exceptions import NotAuthorizedException, ValidationException

from service.accounts import credentials
from service.accounts import queries as accounts_queries
from service.accounts.mail_texts import two_factor_disabled_mail
from service.db.pool import in_transaction
from service.http.errors import Conflict, ServiceUnavailable, invalid_field
from service.mail.outbox import enqueue_mail
from service.observability.audit import ActorRef, RequestOrigin, Target, record_event
from service.security.auth import LOCAL_PROVIDER, Caller
from service.sessions.models import Token
from service.sessions.refresh_tokens import start_session
from service.settings import Settings
from service.two_factor import queries
from service.two_factor import secrets as keys
from service.two_factor.models import BackupCodes, Enrolment, ReauthenticateRequest

ISSUER = "TaskFlow"
STEP_SECONDS = 30
# The code of the previous and the next 30-second step are accepted too (clock drift, RFC 6238 5.2).
DRIFT_STEPS = 1
WRONG_CODE = "the code is incorrect or was already used"
ENROLMENT_REPLACED = (
    "the authenticator being enrolled changed (POST /api/auth/2fa/totp ran again); "
    "confirm with a code from the new one"
)
T = TypeVar("T")


class CheckedCode(NamedTuple):
    """A code that matched, to be spent inside the change's transaction."""

    kind: Literal["totp", "backup_code"]
    step: int  # the TOTP time step; 0 for a backup code
    backup_hash: bytes | None


def _require_two_factor(settings: Settings) -> None:
    if settings.two_factor == "off":
        raise ServiceUnavailable("two-factor sign-in is turned off on this server (TWO_FACTOR=off)")


def _secret(settings: Settings, user_id: uuid.UUID, ciphertext: bytes) -> keys.Secret:
    try:
        return keys.decrypt_secret(settings, user_id, ciphertext)
    except keys.UndecryptableSecret:
        raise ServiceUnavailable(
            "two-factor secrets cannot be read with this server's MFA_ENCRYPTION_KEY or "
            "MFA_ENCRYPTION_OLD_KEYS (a key was removed); an operator must restore the key"
        ) from None


def totp_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code `code` is, within the drift window; None when none is."""
    digits = code.replace(" ", "")
    if len(digits) != 6 or not digits.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    for step in (current, current - DRIFT_STEPS, current + DRIFT_STEPS):
        if hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None


def _match(user_id: uuid.UUID, secret: keys.Secret, code: str) -> CheckedCode | None:
    step = totp_step(secret.totp, code)
    if step is not None:
        return CheckedCode("totp", step, None)
    if keys.looks_like_backup_code(code):
        return CheckedCode("backup_code", 0, keys.backup_code_hash(secret.backup_key, user_id, code))
    return None


async def _spend(connection: asyncpg.Connection, user_id: uuid.UUID, checked: CheckedCode) -> bool:
    if checked.kind == "totp":
        return await queries.spend_step(connection, user_id, checked.step)
    return await queries.spend_backup_code(connection, user_id, checked.backup_hash)


async def _new_backup_codes(
    connection: asyncpg.Connection, backup_key: bytes, user_id: uuid.UUID
) -> list[str]:
    codes = keys.new_backup_codes()
    await queries.delete_backup_codes(connection, user_id)
    hashes = [keys.backup_code_hash(backup_key, user_id, code) for code in codes]
    await queries.insert_backup_codes(connection, user_id, hashes)
    return [f"{code[:5]}-{code[5:]}" for code in codes]


def _local_only(caller: Caller) -> None:
    if caller.provider != LOCAL_PROVIDER:
        raise ValidationException(
            f"this account signs in through {caller.provider}; turn on two-factor sign-in there"
        )


async def _email(pool: asyncpg.Pool, caller: Caller) -> str:
    account = await accounts_queries.get_password_hash(pool, caller.id)
    if account is None:
        raise NotAuthorizedException("account is not active")
    return credentials.normalise_email(account["email"])


async def enrol(
    pool: asyncpg.Pool, settings: Settings, caller: Caller, current_password: str, origin: RequestOrigin
) -> Enrolment:
    """A new pending authenticator (replacing a pending one); 409 when two-factor is already on."""
    _local_only(caller)
    _require_two_factor(settings)
    email = await credentials.check_current_password(pool, settings, caller, current_password, origin)
    secret = pyotp.random_base32()
    ciphertext = keys.encrypt_secret(settings, caller.id, secret, keys.new_backup_key())

    async def store(connection: asyncpg.Connection) -> bool:
        if not await queries.start_enrolment(connection, caller.id, ciphertext):
            return False
        await record_event(
            connection, "mfa.enrolled", origin=origin, actor=caller, target=Target.user(caller.id)
        )
        return True

    if not await in_transaction(pool, store):
        raise Conflict("two-factor sign-in is already on; turn it off first to enrol another authenticator")
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)
    return Enrolment(secret=secret, otpauth_uri=uri)


async def _checked_code(
    pool: asyncpg.Pool,
    settings: Settings,
    user_id: uuid.UUID,
    email: str,
    secret: keys.Secret,
    code: str,
    origin: RequestOrigin,
) -> CheckedCode | None:
    """Count the attempt (429 while locked), then match the code; a mismatch is audited."""
    attempt = await credentials.count_code_attempt(pool, settings, email)
    checked = _match(user_id, secret, code)
    if checked is None:
        await credentials.record_code_failure(pool, settings, email, user_id, attempt, origin)
    return checked


async def confirm(
    pool: asyncpg.Pool, settings: Settings, caller: Caller, code: str, origin: RequestOrigin
) -> BackupCodes:
    """Turn two-factor on with a first code from the app; the 10 backup codes, shown once.

    The code is checked against the pending secret as read; two-factor goes on only if that
    enrolment is still the pending one (409 when a new enrolment replaced it in the meantime:
    its secret was never proven by a code)."""
    _local_only(caller)
    _require_two_factor(settings)
    credential = await queries.get_credential(pool, caller.id)
    if credential is None:
        raise Conflict("no authenticator is being enrolled: POST /api/auth/2fa/totp first")
    if credential["confirmed"]:
        raise Conflict("two-factor sign-in is already on")
    secret = _secret(settings, caller.id, credential["secret_ciphertext"])
    email = await _email(pool, caller)
    attempt = await credentials.count_code_attempt(pool, settings, email)
    step = totp_step(secret.totp, code)
    if step is None:
        await credentials.record_code_failure(pool, settings, email, caller.id, attempt, origin)
        raise invalid_field("code", WRONG_CODE)

    enrolment_id: uuid.UUID = credential["enrolment_id"]

    async def turn_on(connection: asyncpg.Connection) -> list[str] | None:
        # Only the enrolment whose secret the code was checked against: a re-enrolment that
        # replaced it since the read gets a new enrolment_id (a key rotation keeps it).
        if not await queries.confirm_enrolment(connection, caller.id, step, enrolment_id):
            pending = await queries.get_credential(connection, caller.id)
            if pending is not None and not pending["confirmed"] and pending["enrolment_id"] != enrolment_id:
                raise Conflict(ENROLMENT_REPLACED)
            return None
        codes = await _new_backup_codes(connection, secret.backup_key, caller.id)
        await credentials.clear_failures(connection, email)
        await record_event(
            connection, "mfa.confirmed", origin=origin, actor=caller, target=Target.user(caller.id)
        )
        return codes

    codes = await in_transaction(pool, turn_on)
    if codes is None:
        raise invalid_field("code", WRONG_CODE)
    return BackupCodes(backup_codes=codes)


class Reauthentication(NamedTuple):
    email: str
    checked: CheckedCode | None  # the code to spend; None when the password was the proof
    ciphertext: bytes  # the account's encrypted secret, as read


async def _reauthenticated(
    pool: asyncpg.Pool,
    settings: Settings,
    caller: Caller,
    proof: ReauthenticateRequest,
    origin: RequestOrigin,
) -> Reauthentication:
    """The password or a code (counted on the login lockout) proves the owner; 409 when
    two-factor is off."""
    if (proof.current_password is None) == (proof.code is None):
        raise ValidationException("send either current_password or code")
    credential = await queries.get_credential(pool, caller.id)
    if credential is None or not credential["confirmed"]:
        raise Conflict("two-factor sign-in is not on")
    ciphertext: bytes = credential["secret_ciphertext"]
    if proof.current_password is not None:
        email = await credentials.check_current_password(
            pool, settings, caller, proof.current_password, origin
        )
        return Reauthentication(email, None, ciphertext)
    assert proof.code is not None
    email = await _email(pool, caller)
    secret = _secret(settings, caller.id, ciphertext)
    checked = await _checked_code(pool, settings, caller.id, email, secret, proof.code, origin)
    if checked is None:
        raise invalid_field("code", WRONG_CODE)
    return Reauthentication(email, checked, ciphertext)


async def _change_after_reauthentication(
    pool: asyncpg.Pool,
    settings: Settings,
    caller: Caller,
    proof: ReauthenticateRequest,
    origin: RequestOrigin,
    change: Callable[[asyncpg.Connection, Reauthentication], Awaitable[T]],
) -> T:
    """DELETE /totp and POST /backup-codes: reauthenticate, then in one transaction spend the
    code (400 when a concurrent request spent it first: nothing changes), make the change and
    clear the account's failed attempts."""
    _local_only(caller)
    proven = await _reauthenticated(pool, settings, caller, proof, origin)

    async def spend_then_change(connection: asyncpg.Connection) -> tuple[bool, T | None]:
        if proven.checked is not None and not await _spend(connection, caller.id, proven.checked):
            return False, None
        result = await change(connection, proven)
        await credentials.clear_failures(connection, proven.email)
        return True, result

    spent, result = await in_transaction(pool, spend_then_change)
    if not spent:
        raise invalid_field("code", WRONG_CODE)
    return cast(T, result)


async def disable(
    pool: asyncpg.Pool,
    settings: Settings,
    caller: Caller,
    proof: ReauthenticateRequest,
    origin: RequestOrigin,
) -> None:
    """Turn two-factor off: the authenticator, its backup codes and open challenges are deleted,
    and a notice goes to the account's address."""

    async def turn_off(connection: asyncpg.Connection, proven: Reauthentication) -> None:
        await queries.delete_credential(connection, caller.id)
        await queries.delete_backup_codes(connection, caller.id)
        # A security notice, in the same transaction: it cannot be lost (service/mail/outbox.py).
        await enqueue_mail(connection, two_factor_disabled_mail(proven.email))
        by = "password" if proven.checked is None else proven.checked.kind
        await record_event(
            connection,
            "mfa.disabled",
            origin=origin,
            actor=caller,
            target=Target.user(caller.id),
            details={"by": by},
        )

    await _change_after_reauthentication(pool, settings, caller, proof, origin, turn_off)


async def regenerate_backup_codes(
    pool: asyncpg.Pool,
    settings: Settings,
    caller: Caller,
    proof: ReauthenticateRequest,
    origin: RequestOrigin,
) -> BackupCodes:
    """10 new backup codes; the old ones stop working."""

    async def renew(connection: asyncpg.Connection, proven: Reauthentication) -> list[str]:
        backup_key = _secret(settings, caller.id, proven.ciphertext).backup_key
        codes = await _new_backup_codes(connection, backup_key, caller.id)
        await record_event(
            connection,
            "mfa.backup_codes_regenerated",
            origin=origin,
            actor=caller,
            target=Target.user(caller.id),
        )
        return codes

    codes = await _change_after_reauthentication(pool, settings, caller, proof, origin, renew)
    return BackupCodes(backup_codes=codes)


async def verify(
    pool: asyncpg.Pool, settings: Settings, mfa_token: str, code: str, origin: RequestOrigin
) -> Token:
    """The second step of a login: a code for the login's challenge -> a new session.

    The challenge and the code are spent in one transaction, each by one conditional UPDATE:
    of concurrent verifications with one code or one mfa_token, exactly one gets a session.
    """
    digest = keys.mfa_token_digest(mfa_token)
    challenge = await queries.find_challenge(pool, digest)
    if challenge is None:
        raise NotAuthorizedException("the mfa_token is invalid, expired or already used; log in again")
    user_id: uuid.UUID = challenge["user_id"]
    email = credentials.normalise_email(challenge["email"])
    secret = _secret(settings, user_id, challenge["secret_ciphertext"])
    checked = await _checked_code(pool, settings, user_id, email, secret, code, origin)
    if checked is None:
        raise NotAuthorizedException(WRONG_CODE)

    async def sign_in(connection: asyncpg.Connection) -> Token:
        # A refusal raises, so the transaction rolls back: a replayed code does not spend the
        # challenge, and a spent challenge does not spend the code.
        user = await queries.lock_mfa_user(connection, user_id)
        if user is None or not user["is_active"]:
            raise _Refused("account is not active")
        if not await queries.spend_challenge(connection, digest):
            raise _Refused("the mfa_token is invalid, expired or already used; log in again")
        if not await _spend(connection, user_id, checked):
            raise _Refused(WRONG_CODE)
        await credentials.clear_failures(connection, email)
        token = await start_session(connection, settings, user_id, origin)
        await record_event(
            connection,
            "auth.login",
            origin=origin,
            actor=ActorRef(user_id, email),
            target=Target.user(user_id),
            details={"mfa": checked.kind},
        )
        return token

    try:
        return await in_transaction(pool, sign_in)
    except _Refused as refused:
        if refused.reason == WRONG_CODE:
            details = {"reason": "code_already_used", "kind": checked.kind}
            await record_event(
                pool, "mfa.verify_failed", origin=origin, actor=ActorRef(user_id, email), details=details
            )
        raise NotAuthorizedException(refused.reason) from None


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
