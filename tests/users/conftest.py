"""Accounts in the three roles a guard tells apart: an admin, a user, and another user."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
import pytest

from service.settings import Settings
from tests.conftest import bearer, make_user


class Account(msgspec.Struct):
    id: uuid.UUID
    email: str
    headers: dict[str, str]


async def make_account(db: asyncpg.Connection, settings: Settings, role: str = "user") -> Account:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    user_id = await make_user(db, email, role=role)
    return Account(id=user_id, email=email, headers=bearer(settings, user_id))


@pytest.fixture
async def admin(db: asyncpg.Connection, settings: Settings) -> Account:
    return await make_account(db, settings, "admin")


@pytest.fixture
async def user(db: asyncpg.Connection, settings: Settings) -> Account:
    return await make_account(db, settings)


@pytest.fixture
async def other(db: asyncpg.Connection, settings: Settings) -> Account:
    return await make_account(db, settings)
