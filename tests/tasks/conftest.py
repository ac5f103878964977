"""Two users with tokens of their own, and a helper that creates tasks over HTTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from service.settings import Settings
from tests.conftest import bearer, make_user


@dataclass(frozen=True)
class TaskUser:
    id: uuid.UUID
    headers: dict[str, str]

    @property
    def tasks_url(self) -> str:
        return f"/api/{self.id}/tasks"

    def task_url(self, task_id: int | str) -> str:
        return f"{self.tasks_url}/{task_id}"


@pytest.fixture
async def alice(db: asyncpg.Connection, settings: Settings) -> TaskUser:
    user_id = await make_user(db, "alice@example.com")
    return TaskUser(user_id, bearer(settings, user_id))


@pytest.fixture
async def bob(db: asyncpg.Connection, settings: Settings) -> TaskUser:
    user_id = await make_user(db, "bob@example.com")
    return TaskUser(user_id, bearer(settings, user_id))


async def create_task(client: httpx.AsyncClient, user: TaskUser, **body: Any) -> dict[str, Any]:
    body.setdefault("title", "Buy groceries")
    response = await client.post(user.tasks_url, json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task
