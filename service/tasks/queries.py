"""The task queries: each runs one file of sql/tasks/ for one owner and returns Tasks."""

from __future__ import annotations

import uuid
from typing import NamedTuple, TypeVar

import asyncpg
import msgspec

from service.db.sql import load_sql
from service.tasks.models import Task, UpdateTask

LIST_TASKS = load_sql("tasks/list_tasks")
COUNT_TASKS = load_sql("tasks/count_tasks")
CREATE_TASK = load_sql("tasks/create_task")
GET_TASK = load_sql("tasks/get_task")
UPDATE_TASK = load_sql("tasks/update_task")
DELETE_TASK = load_sql("tasks/delete_task")

T = TypeVar("T")


async def list_tasks(
    pool: asyncpg.Pool, owner: uuid.UUID, subject: str, completed: bool | None, limit: int, offset: int
) -> tuple[list[Task], int]:
    """One page, newest first, and the number of tasks matching `completed` over all pages."""
    records = await pool.fetch(LIST_TASKS, owner, completed, limit, offset)
    if records:
        total = records[0]["total"]
    else:
        total = await pool.fetchval(COUNT_TASKS, owner, completed) if offset else 0
    return [Task.of(record, subject) for record in records], total


class VersionedTask(NamedTuple):
    task: Task
    version: str  # the row's xmin: every write of the row changes it (service.http.conditional)


def _versioned(record: asyncpg.Record, subject: str) -> VersionedTask:
    return VersionedTask(Task.of(record, subject), record["version"])


async def create_task(
    pool: asyncpg.Pool, owner: uuid.UUID, subject: str, title: str, description: str | None, completed: bool
) -> VersionedTask:
    record = await pool.fetchrow(CREATE_TASK, owner, title, description, completed)
    return _versioned(record, subject)


async def get_task(pool: asyncpg.Pool, owner: uuid.UUID, subject: str, task_id: int) -> VersionedTask | None:
    record = await pool.fetchrow(GET_TASK, task_id, owner)
    return None if record is None else _versioned(record, subject)


async def task_exists(pool: asyncpg.Pool, owner: uuid.UUID, task_id: int) -> bool:
    return await pool.fetchval(GET_TASK, task_id, owner) is not None


async def update_task(
    pool: asyncpg.Pool,
    owner: uuid.UUID,
    subject: str,
    task_id: int,
    change: UpdateTask,
    versions: list[str] | None,
) -> VersionedTask | None:
    """Only the fields `change` sets; `description: null` clears the description. With
    `versions` (If-Match), only while the row is at one of them: the check is part of the write."""
    record = await pool.fetchrow(
        UPDATE_TASK,
        task_id,
        owner,
        _unless_unset(change.title),
        change.description is not msgspec.UNSET,
        _unless_unset(change.description),
        _unless_unset(change.is_completed),
        versions,
    )
    return None if record is None else _versioned(record, subject)


async def delete_task(pool: asyncpg.Pool, owner: uuid.UUID, task_id: int, versions: list[str] | None) -> bool:
    return await pool.fetchval(DELETE_TASK, task_id, owner, versions) is not None


def _unless_unset(value: T | msgspec.UnsetType) -> T | None:
    return None if value is msgspec.UNSET else value
