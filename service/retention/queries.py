"""The retention queries: sql/retention/ files, the pruner's lock and one batched delete per
table (service/retention/prune.py decides which run, with what arguments)."""

from __future__ import annotations

import asyncpg

from service.db.sql import load_sql

TRY_PRUNE_LOCK = load_sql("retention/try_prune_lock")


def delete_statement(name: str) -> str:
    """The batched delete in `sql/retention/<name>.sql`, read once; the retention rules
    (service/retention/prune.py) name theirs, so a new rule is its Rule and its SQL file."""
    try:
        return load_sql(f"retention/{name}")
    except FileNotFoundError:
        raise ValueError(f"no retention query {name}") from None


async def try_prune_lock(connection: asyncpg.Connection) -> bool:
    """Take the pruners' transaction-level advisory lock, if no other pruner holds it."""
    return bool(await connection.fetchval(TRY_PRUNE_LOCK))


async def delete_batch(pool: asyncpg.Pool, delete: str, batch_size: int, arguments: tuple[int, ...]) -> int:
    """Run one batch of the delete named `delete` (see delete_statement); the rows it removed."""
    status = await pool.execute(delete_statement(delete), batch_size, *arguments)
    return int(status.split()[-1])
