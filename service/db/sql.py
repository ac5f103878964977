"""The SQL files under sql/: each read once, named for traces, and its rows decoded into Structs."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TypeVar

import asyncpg
import msgspec

from service.db.paths import SQL_DIR

SQL_ROOT = SQL_DIR
BIGINT_MAX = 2**63 - 1  # the largest PostgreSQL bigint: bound integer ids with it before a query

T = TypeVar("T", bound=msgspec.Struct)


# The file each loaded statement came from, by its text: how a traced statement is named.
_SQL_FILE_OF: dict[str, str] = {}


@functools.cache
def load_sql(name: str) -> str:
    """Return the text of `sql/<name>.sql`; read once per process, at import of the caller."""
    path = SQL_ROOT / f"{name}.sql"
    text = path.read_text(encoding="utf-8")
    _SQL_FILE_OF[text] = name
    return text


def statement_name(query: str) -> str:
    """The SQL file a statement was loaded from (`tasks/list_tasks`), else its first keyword
    (`BEGIN`, `COMMIT` from asyncpg's transactions)."""
    name = _SQL_FILE_OF.get(query)
    if name is not None:
        return name
    words = query.split(None, 1)
    return words[0].upper() if words else "SQL"


def all_sql_files() -> list[str]:
    return sorted(str(p.relative_to(SQL_ROOT).with_suffix("")) for p in SQL_ROOT.rglob("*.sql"))


def row_to(struct: type[T], record: asyncpg.Record) -> T:
    return struct(**record)


def rows_to(struct: type[T], records: Iterable[asyncpg.Record]) -> list[T]:
    return [struct(**record) for record in records]
