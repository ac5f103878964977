"""The argon2 thread pool is sized by the CPUs the process may use (its affinity), not the host's
core count, and ARGON2_THREADS overrides it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from service.security.passwords import passwords_for, usable_cpus
from service.settings import Settings
from tests.conftest import make_settings


def test_the_default_is_the_process_cpu_affinity(tmp_path: Path) -> None:
    assert usable_cpus() == len(os.sched_getaffinity(0))
    passwords = passwords_for(make_settings("postgresql://unused@127.0.0.1:9/unused", tmp_path))
    assert passwords.threads == len(os.sched_getaffinity(0))


def test_a_process_pinned_to_one_cpu_hashes_on_one_thread(tmp_path: Path) -> None:
    """As in a container given one CPU of a larger host (a cpuset): one thread, not one per core."""
    script = (
        "import os\n"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "from service.security.passwords import Passwords\n"
        "print(Passwords(8192, 1, 1).threads, os.cpu_count())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    threads, cpu_count = result.stdout.split()
    assert threads == "1", f"{threads} hashing threads for 1 usable CPU of {cpu_count}"


async def test_argon2_threads_bounds_the_hashes_running_at_once(tmp_path: Path) -> None:
    settings = make_settings("postgresql://unused@127.0.0.1:9/unused", tmp_path, ARGON2_THREADS="2")
    passwords = passwords_for(settings)
    assert passwords.threads == 2
    running: set[int] = set()
    most = 0
    lock = threading.Lock()

    def hash_and_count(password: str) -> str:
        nonlocal most
        with lock:
            running.add(threading.get_ident())
            most = max(most, len(running))
        try:
            return passwords._hasher.hash(password)
        finally:
            with lock:
                running.discard(threading.get_ident())

    loop = asyncio.get_running_loop()
    hashes = await asyncio.gather(
        *(loop.run_in_executor(passwords._executor, hash_and_count, f"password {n}") for n in range(8))
    )
    assert len(set(hashes)) == 8
    assert most <= 2
    assert await passwords.verify(hashes[0], "password 0")


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_argon2_threads_must_be_a_positive_count(tmp_path: Path, value: str) -> None:
    from service.settings import SettingsError

    with pytest.raises(SettingsError, match="ARGON2_THREADS"):
        make_settings("postgresql://unused@127.0.0.1:9/unused", tmp_path, ARGON2_THREADS=value)


async def test_the_production_parameters_hash_and_verify() -> None:
    """The suite hashes with 8 MiB and one pass (`settings_environ` in tests/conftest.py) to stay
    fast; this hash uses what production uses when ARGON2_* are unset."""
    settings = Settings()
    passwords = passwords_for(settings)
    stored = await passwords.hash("correct horse battery staple")
    assert f"$m={settings.argon2_memory_kib},t={settings.argon2_time_cost},p=1$" in stored
    assert (settings.argon2_memory_kib, settings.argon2_time_cost) == (19456, 2)  # docs/auth.md
    assert await passwords.verify(stored, "correct horse battery staple")
    assert not await passwords.verify(stored, "correct horse battery stapler")
    assert not passwords.needs_rehash(stored)
