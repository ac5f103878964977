"""The caller cache's own figures: notification latency and memory. Not part of the service.

    uv run python bench/caller_cache.py latency [--samples 500] [--load 64]
    uv run python bench/caller_cache.py memory [--entries 10000]

latency: a fresh embedded PostgreSQL, the service's own CallerListener and CallerCache, and a
second connection revoking access tokens (the logout statement, sql/accounts/
revoke_access_token.sql) one at a time. Each sample is the time from sending the revocation
to the cache applying its announcement, so it includes the commit itself. `--load N` runs N
tasks doing task-list-sized work on the same event loop meanwhile, as a busy worker would.

memory: `--entries` identities, users and access tokens in one CallerCache (the default size
fills every map), measured with tracemalloc.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.db.embedded import EmbeddedPostgres  # noqa: E402
from service.db.pool import migrations  # noqa: E402
from service.db.sql import load_sql  # noqa: E402
from service.security.caller_cache import DEFAULT_CAPACITY, CachedUser, CallerCache  # noqa: E402
from service.security.caller_listener import CallerListener  # noqa: E402

INSERT_USER = load_sql("accounts/insert_user")
REVOKE_ACCESS_TOKEN = load_sql("sessions/revoke_access_token")
LIST_TASKS = load_sql("tasks/list_tasks")


class TimedCache(CallerCache):
    """Records when each announcement is applied."""

    def __init__(self) -> None:
        super().__init__()
        self.applied: dict[str, float] = {}

    def invalidate(self, payload: str) -> None:
        super().invalidate(payload)
        self.applied[payload] = time.perf_counter()


async def _busy(pool: asyncpg.Pool, user_id: uuid.UUID, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await pool.fetch(LIST_TASKS, user_id, None, 50, 0)


async def latency(url: str, samples: int, load: int) -> tuple[list[float], list[float]]:
    cache = TimedCache()
    listener = CallerListener(cache)
    await listener.start(url)
    writer = await asyncpg.connect(url)
    pool = await asyncpg.create_pool(url, min_size=min(load, 10) or 1, max_size=max(min(load, 10), 1))
    user_id = (await writer.fetchrow(INSERT_USER, f"{uuid.uuid4().hex}@bench.example", None, None))["id"]
    stop = asyncio.Event()
    busy = [asyncio.create_task(_busy(pool, user_id, stop)) for _ in range(load)]
    figures: list[float] = []
    after_commit: list[float] = []
    try:
        for _ in range(samples):
            jti = uuid.uuid4()
            sent = time.perf_counter()
            await writer.execute(REVOKE_ACCESS_TOKEN, jti, user_id, time.time() + 60)
            committed = time.perf_counter()
            payload = f"t:{jti}"
            deadline = sent + 5
            while payload not in cache.applied:
                assert time.perf_counter() < deadline, "an announcement did not arrive"
                await asyncio.sleep(0)
            figures.append((cache.applied[payload] - sent) * 1000)
            after_commit.append(max(0.0, cache.applied[payload] - committed) * 1000)
    finally:
        stop.set()
        await asyncio.gather(*busy)
        await pool.close()
        await writer.close()
        await listener.stop()
    return figures, after_commit


def memory(entries: int) -> int:
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    cache = CallerCache(capacity=entries)
    cache.trust_until(time.monotonic() + 3600)
    for number in range(entries):
        user_id = uuid.uuid4()
        ticket = cache.ticket()
        cache.store_identity(ticket, "better-auth", f"subject-{number:08d}-{uuid.uuid4().hex[:12]}", user_id)
        cache.store_user(
            ticket,
            CachedUser(
                id=user_id,
                email=f"user-{number:08d}@example.com",
                role="user",
                provider="better-auth",
                is_active=True,
                tokens_valid_after=float("-inf"),
            ),
        )
        cache.store_token(ticket, uuid.uuid4(), False, time.time() + 1800)
    after = tracemalloc.take_snapshot()
    assert len(cache) == 3 * entries
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["latency", "memory"])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--load", type=int, default=0, help="busy tasks on the listener's event loop")
    parser.add_argument("--entries", type=int, default=DEFAULT_CAPACITY)
    args = parser.parse_args()
    if args.what == "memory":
        size = memory(args.entries)
        print(
            f"caller cache with {args.entries} identities, {args.entries} users and {args.entries} tokens: "
            f"{size / 1024 / 1024:.1f} MiB ({size / (3 * args.entries):.0f} bytes per entry)"
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as data_dir:
        database = EmbeddedPostgres(Path(data_dir))
        url = database.start()
        try:
            migrations.apply_pending(url)
            figures, after_commit = asyncio.run(latency(url, args.samples, args.load))
        finally:
            database.stop()
    print(f"notification latency over {len(figures)} revocations, {args.load} busy tasks on the loop:")
    for label, values in (("sent -> applied", figures), ("commit acknowledged -> applied", after_commit)):
        values.sort()
        print(
            f"  {label:<31} p50 {statistics.median(values):.2f} ms, "
            f"p99 {values[int(len(values) * 0.99) - 1]:.2f} ms, max {values[-1]:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
