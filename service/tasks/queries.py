"""The task queries: each runs one file of sql/tasks/ for one owner and returns Tasks."""

from __future__ import annotations

import uuid
from typing import TypeVar

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


async def create_task(
    pool: asyncpg.Pool, owner: uuid.UUID, subject: str, title: str, description: str | None, completed: bool
) -> Task:
    record = await pool.fetchrow(CREATE_TASK, owner, title, description, completed)
    return Task.of(record, subject)


async def get_task(pool: asyncpg.Pool, owner: uuid.UUID, subject: str, task_id: int) -> Task | None:
    record = await pool.fetchrow(GET_TASK, task_id, owner)
    return None if record is None else Task.of(record, subject)


async def update_task(
    pool: asyncpg.Pool, owner: uuid.UUID, subject: str, task_id: int, change: UpdateTask
) -> Task | None:
    """Only the fields `change` sets; `description: null` clears the description."""
    record = await pool.fetchrow(
        UPDATE_TASK,
        task_id,
        owner,
        _unless_unset(change.title),
        change.description is not msgspec.UNSET,
        _unless_unset(change.description),
        _unless_unset(change.is_completed),
    )
    return None if record is None else Task.of(record, subject)


async def delete_task(pool: asyncpg.Pool, owner: uuid.UUID, task_id: int) -> bool:
    return await pool.fetchval(DELETE_TASK, task_id, owner) is not None


def _unless_unset(value: T | msgspec.UnsetType) -> T | None:
    return None if value is msgspec.UNSET else value
