"""CPU time of a login besides its argon2id verification, in process.

The login target (logins/s >= 0.90x argon2 alone) leaves 10 % of a login's CPU for everything but
the password check. This measures that share directly: `--rounds` rounds, each of `--logins`
sequential logins through the service's ASGI app (form parsing, the lockout count, the user row,
the session and refresh-token rows, the audit event, token signing, the answer) and as many bare
argon2id verifications with the service's parameters, on a real embedded PostgreSQL; the
process's CPU time (every thread: the hashing threads too) per login minus per verification, the
median over the rounds. PostgreSQL's own CPU is not counted (bench/run.py's `login_ratio` counts
it in its `pg us/req`).

    uv run python bench/login_cpu.py                       # the service's argon2 parameters
    uv run python bench/login_cpu.py --memory-kib 8192 --time-cost 1   # cheap argon2: the same
                                                           # difference, in less time
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.inproc import _call, _lifespan, _scope, on_embedded_database  # noqa: E402

EMAIL = "login-cpu@bench.example"
PASSWORD = "bench-password-9f3c1a"


def _login_scope() -> dict[str, object]:
    scope = _scope("/api/auth/login", "", "POST")
    scope["headers"] = [(b"content-type", b"application/x-www-form-urlencoded")]
    return scope


async def main(args: argparse.Namespace) -> None:
    from argon2 import PasswordHasher

    from service.app import create_app
    from service.settings import load_settings

    settings = load_settings()
    app = create_app(settings)
    stop = await _lifespan(app)
    register = _scope("/api/auth/register", "", "POST")
    register["headers"] = [(b"content-type", b"application/json")]
    status, body = await _call(app, register, f'{{"email":"{EMAIL}","password":"{PASSWORD}"}}'.encode())
    assert status == 201, body
    form = f"username={EMAIL}&password={PASSWORD}".encode()
    hasher = PasswordHasher(memory_cost=args.memory_kib, time_cost=args.time_cost, parallelism=1)
    digest = hasher.hash(PASSWORD)
    for _ in range(3):  # warm: pool connections, prepared statements
        await _call(app, _login_scope(), form)
    logins: list[float] = []
    verifications: list[float] = []
    for _ in range(args.rounds):
        started = time.process_time()
        for _ in range(args.logins):
            status, body = await _call(app, _login_scope(), form)
            assert status == 200, body
        logins.append((time.process_time() - started) / args.logins * 1e3)
        started = time.process_time()
        for _ in range(args.logins):
            hasher.verify(digest, PASSWORD)
        verifications.append((time.process_time() - started) / args.logins * 1e3)
    rest = sorted(a - b for a, b in zip(logins, verifications, strict=True))
    print(
        f"login {statistics.median(logins):.2f} ms CPU, argon2 alone {statistics.median(verifications):.2f} ms; "
        f"the rest of a login: median {statistics.median(rest):.2f} ms (range {rest[0]:.2f}-{rest[-1]:.2f}), "
        f"{statistics.median(rest) / statistics.median(logins):.1%} of a login's CPU in this process"
    )
    await stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--memory-kib", type=int, default=19456)
    parser.add_argument("--time-cost", type=int, default=2)
    arguments = parser.parse_args()
    on_embedded_database(
        main(arguments),
        "login-cpu-",
        LOGIN_MAX_FAILURES="1000000",
        ARGON2_MEMORY_KIB=str(arguments.memory_kib),
        ARGON2_TIME_COST=str(arguments.time_cost),
    )
