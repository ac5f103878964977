"""Apps with operations settings of their own (limits, Redis, metrics), served in-process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio
from litestar import Litestar

from service.app import create_app
from tests.conftest import app_for, make_settings, running

AppClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_client(database_url: str, tmp_path: Path, db: asyncpg.Connection) -> AppClient:
    """`async with app_client(RATE_LIMIT_PER_MINUTE="3") as client:` one app, its lifespan, a client."""

    @asynccontextmanager
    async def open_client(
        peer: str = "127.0.0.1", prepare: Callable[[Litestar], None] | None = None, **env: str
    ) -> AsyncIterator[httpx.AsyncClient]:
        settings = make_settings(database_url, tmp_path, **env)
        # `prepare` may change the app for good (register a route): then it is this test's own.
        app = create_app(settings) if prepare is not None else app_for(settings)
        if prepare is not None:
            prepare(app)
        async with running(app):
            transport = httpx.ASGITransport(app=app, client=(peer, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client

    return open_client


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own in the session's Redis, and its keys removed afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
