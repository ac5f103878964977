"""The retention policy: delete what no longer protects anyone or is older than its retention.

Rows go in batches of BATCH_SIZE, each its own short statement, so no table is locked for long
and the service keeps serving. One pruner runs at a time across every worker and host: it holds
a PostgreSQL advisory lock in an otherwise idle transaction on a connection of its own (a
transaction-level lock, so it also holds behind a transaction pooler, and it goes with the
connection if the pruner dies), while the deletes run on the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from service.accounts.link_tokens import MAIL_WINDOW_SECONDS
from service.db.pool import CONNECT_TIMEOUT_SECONDS, command_pool
from service.retention import queries
from service.settings import Settings

BATCH_SIZE = 1000

log = logging.getLogger("service.retention")


class Rule:
    """One table's retention: its batched delete, with the arguments the settings give it, or
    None when the settings keep that table's rows."""

    def __init__(
        self, table: str, query: str, arguments: Callable[[Settings], tuple[int, ...] | None]
    ) -> None:
        self.table = table
        queries.delete_statement(query)  # read now: a rule without its SQL file fails at import
        self.query = query
        self.arguments = arguments


def _days(days: int | None) -> tuple[int, ...] | None:
    return (days,) if days else None


RULES = (
    Rule("refresh_tokens", "delete_expired_refresh_tokens", lambda settings: ()),
    Rule("revoked_access_tokens", "delete_expired_revoked_access_tokens", lambda settings: ()),
    Rule("login_failures", "delete_stale_login_failures", lambda settings: (settings.login_lockout_minutes,)),
    Rule("audit_events", "delete_old_audit_events", lambda settings: _days(settings.audit_retention_days)),
    Rule("scans", "delete_old_scans", lambda settings: _days(settings.scan_retention_days)),
    Rule("mfa_challenges", "delete_expired_mfa_challenges", lambda settings: ()),
    Rule("mail_messages", "delete_old_sent_mails", lambda settings: _days(settings.mail_retention_days)),
    Rule("pgqueuer_log", "delete_old_job_log", lambda settings: _days(settings.job_log_retention_days)),
    Rule("account_tokens", "delete_spent_account_tokens", lambda settings: ()),
    Rule(
        "account_mail_counters", "delete_stale_account_mail_counters", lambda settings: (MAIL_WINDOW_SECONDS,)
    ),
)

# What prune() found for each table: the rows removed, or None when the table is kept.
Removed = dict[str, int | None]


async def _delete_in_batches(pool: asyncpg.Pool, query: str, arguments: tuple[int, ...]) -> int:
    removed = 0
    while True:
        batch = await queries.delete_batch(pool, query, BATCH_SIZE, arguments)
        removed += batch
        if batch < BATCH_SIZE:
            return removed


async def prune(pool: asyncpg.Pool, database_url: str, settings: Settings) -> Removed | None:
    """Apply every rule; None (and nothing removed) when another pruner holds the lock."""
    lock_connection = await asyncpg.connect(
        database_url,
        timeout=CONNECT_TIMEOUT_SECONDS,
        statement_cache_size=0,
        server_settings={"application_name": "service-prune"},
    )
    try:
        async with lock_connection.transaction():
            if not await queries.try_prune_lock(lock_connection):
                return None
            removed: Removed = {}
            for rule in RULES:
                arguments = rule.arguments(settings)
                removed[rule.table] = (
                    None if arguments is None else await _delete_in_batches(pool, rule.query, arguments)
                )
            return removed
    finally:
        await lock_connection.close()


def describe(removed: Removed) -> str:
    """`refresh_tokens=3 ... scans=kept`: one line for the log."""
    return " ".join(f"{table}={'kept' if count is None else count}" for table, count in removed.items())


async def prune_periodically(
    pool: asyncpg.Pool, database_url: str, settings: Settings, interval_seconds: float
) -> None:
    """Prune now and then every `interval_seconds`, until cancelled. A failure is logged and
    tried again at the next interval; it never ends the loop, nor the worker."""
    while True:
        try:
            removed = await prune(pool, database_url, settings)
        except Exception as exc:  # any failure waits for the next interval
            log.warning(
                "retention prune failed, retrying in %g s: %s: %s", interval_seconds, type(exc).__name__, exc
            )
        else:
            if removed is None:
                log.debug("retention prune skipped: another worker is pruning")
            else:
                log.info("retention prune removed %s", describe(removed), extra={"removed": removed})
        await asyncio.sleep(interval_seconds)


async def run_once(settings: Settings, database_url: str) -> Removed | None:
    """`service prune`: one run on a small pool of its own."""
    async with command_pool(settings, database_url) as pool:
        return await prune(pool, database_url, settings)
