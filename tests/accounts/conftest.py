"""Helpers for the auth routes: register and log in through the API, as a frontend does."""

from __future__ import annotations

import httpx
import pytest

STRONG_PASSWORD = "correct horse battery staple"
OTHER_STRONG_PASSWORD = "plum orchard at midnight 42"


async def register(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = STRONG_PASSWORD
) -> httpx.Response:
    return await client.post("/api/auth/register", json={"email": email, "password": password})


async def login(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = STRONG_PASSWORD
) -> httpx.Response:
    """The OAuth2 password form, as seed 004's curl sends it."""
    return await client.post("/api/auth/login", data={"username": email, "password": password})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def tokens(client: httpx.AsyncClient) -> dict[str, str]:
    """A registered user's first session: access_token, refresh_token, ..."""
    assert (await register(client)).status_code == 201
    response = await login(client)
    assert response.status_code == 200
    body: dict[str, str] = response.json()
    return body
