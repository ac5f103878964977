"""The retention queries: sql/retention/ files, the pruner's lock and one batched delete per
table (service/retention/prune.py decides which run, with what arguments)."""

from __future__ import annotations

import asyncpg

from service.db.sql import load_sql

TRY_PRUNE_LOCK = load_sql("retention/try_prune_lock")
DELETES = {
    name: load_sql(f"retention/{name}")
    for name in (
        "delete_expired_refresh_tokens",
        "delete_expired_revoked_access_tokens",
        "delete_stale_login_failures",
        "delete_old_audit_events",
        "delete_old_scans",
        "delete_expired_mfa_challenges",
        "delete_old_sent_mails",
        "delete_old_job_log",
        "delete_spent_account_tokens",
        "delete_stale_account_mail_counters",
    )
}


async def try_prune_lock(connection: asyncpg.Connection) -> bool:
    """Take the pruners' transaction-level advisory lock, if no other pruner holds it."""
    return bool(await connection.fetchval(TRY_PRUNE_LOCK))


async def delete_batch(pool: asyncpg.Pool, delete: str, batch_size: int, arguments: tuple[int, ...]) -> int:
    """Run one batch of the delete named `delete` (a key of DELETES); the rows it removed."""
    status = await pool.execute(DELETES[delete], batch_size, *arguments)
    return int(status.split()[-1])
