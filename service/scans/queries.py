"""The scan queries: each runs one file of sql/scans/ for one owner and returns Scans."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec

from service.db.sql import load_sql
from service.scans.models import Scan

INSERT_SCAN = load_sql("scans/insert_scan")
GET_SCAN = load_sql("scans/get_scan")
LIST_SCANS_NEWEST = load_sql("scans/list_scans_newest")
LIST_SCANS_AFTER = load_sql("scans/list_scans_after")
DELETE_SCAN = load_sql("scans/delete_scan")


def _scan(record: asyncpg.Record) -> Scan:
    # Converted, not just constructed, so `data` leaves as Risk objects in the contract's key order
    # rather than in the order jsonb happens to store keys.
    return msgspec.convert(dict(record), Scan)


async def insert_scan(
    pool: asyncpg.Pool, owner: uuid.UUID, filename: str | None, data: Any, source: str
) -> Scan:
    return _scan(await pool.fetchrow(INSERT_SCAN, owner, filename, data, source))


async def list_scans(
    pool: asyncpg.Pool, owner: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, count: int
) -> list[Scan]:
    """Up to `count` scans, newest first, from the start or after the (created_at, id) of `after`."""
    if after is None:
        records = await pool.fetch(LIST_SCANS_NEWEST, owner, count)
    else:
        records = await pool.fetch(LIST_SCANS_AFTER, owner, after[0], after[1], count)
    return [_scan(record) for record in records]


async def get_scan(pool: asyncpg.Pool, owner: uuid.UUID, scan_id: uuid.UUID) -> Scan | None:
    row = await pool.fetchrow(GET_SCAN, scan_id, owner)
    return None if row is None else _scan(row)


class DeletedScan(NamedTuple):
    filename: str | None


async def delete_scan(
    connection: asyncpg.Connection, owner: uuid.UUID, scan_id: uuid.UUID
) -> DeletedScan | None:
    """Delete the scan in the caller's transaction; None when this owner has no such scan."""
    row = await connection.fetchrow(DELETE_SCAN, scan_id, owner)
    return None if row is None else DeletedScan(row["filename"])
