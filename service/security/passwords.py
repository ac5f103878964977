"""Passwords: argon2id hashing off the event loop, and the policy a new password must meet."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from service.settings import Settings

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")

# The hashing threads run 10 steps nicer than the event loop: nice 10 against 0 gives the loop
# (and PostgreSQL) about nine tenths of a contended core, while an idle machine still gives
# hashing all of it. Without it a burst of logins took the CPU from every other request: the
# task list's p99 went from 12 to 46 ms during a login storm (bench/run.py, login_storm).
HASHING_THREAD_NICENESS = 10


def _lower_thread_priority() -> None:
    """Runs once in each hashing thread. Linux applies setpriority to a single thread id."""
    # Not permitted, or not Linux: hashing still works, at the loop's priority.
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness + HASHING_THREAD_NICENESS))


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's cpuset, `taskset`), not the
    machine's count: a 2-CPU container on a 64-core node would otherwise run 64 hashes at once
    per worker, each holding ARGON2_MEMORY_KIB."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


# argon2-cffi releases the GIL, so hashes run truly in parallel on these threads. One thread per
# usable CPU is all the CPU there is; the cap also bounds memory (each hash holds ARGON2_MEMORY_KIB).
@functools.cache
def hashing_threads(count: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=count, thread_name_prefix="argon2", initializer=_lower_thread_priority
    )


T = TypeVar("T")


async def _off_the_loop(function: Callable[[], T], threads: ThreadPoolExecutor | None = None) -> T:
    executor = threads if threads is not None else hashing_threads(usable_cpus())
    return await asyncio.get_running_loop().run_in_executor(executor, function)


class PasswordRejected(ValueError):
    """A new password does not meet the policy; the message tells the user why."""


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def check_new_password(settings: Settings, password: str) -> None:
    """Raise PasswordRejected unless the password meets the configured policy.

    The upper bound is also a Meta constraint on every request Struct, so an oversized
    password is refused while decoding, before anything reaches this function or the hasher.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordRejected(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    if not settings.strict_passwords:
        return
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordRejected(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if password.lower() in common_passwords():
        raise PasswordRejected("password is too common; choose one that is not on lists of leaked passwords")


class Passwords:
    """argon2id with the configured cost; every hash and verification runs on a worker thread."""

    def __init__(self, memory_kib: int, time_cost: int, parallelism: int, threads: int | None = None) -> None:
        self._hasher = PasswordHasher(
            memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism, type=Type.ID
        )
        # ARGON2_THREADS, else one per usable CPU: at most this many hashes at once per worker.
        self.threads = threads or usable_cpus()
        self._executor = hashing_threads(self.threads)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await _off_the_loop(lambda: self._hasher.hash(password), self._executor)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when the password matches. With no stored hash (unknown email, external account)
        a dummy hash of the same cost is checked, so the answer takes as long as a wrong password."""
        if stored_hash is None:
            stored_hash = await self._dummy()
        return await _off_the_loop(functools.partial(self._matches, stored_hash, password), self._executor)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)

    def _matches(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(32))
        return self._dummy_hash


@functools.cache
def _passwords(memory_kib: int, time_cost: int, parallelism: int, threads: int | None) -> Passwords:
    return Passwords(memory_kib, time_cost, parallelism, threads)


def passwords_for(settings: Settings) -> Passwords:
    return _passwords(
        settings.argon2_memory_kib,
        settings.argon2_time_cost,
        settings.argon2_parallelism,
        settings.argon2_threads,
    )
