"""Accounts from Supabase and Better Auth carry their provider's verified flag."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.app import create_app
from tests.conftest import make_settings, running
from tests.providers.conftest import (
    BETTER_AUTH_SECRET,
    SUPABASE_SECRET,
    hs256,
    seed_002_claims,
    supabase_claims,
)


@pytest.mark.parametrize(
    ("provider", "changes", "verified"),
    [
        ("supabase", {"email_verified": True}, True),
        ("supabase", {"user_metadata": {"email_verified": True}}, True),
        ("supabase", {"user_metadata": {"email_verified": "yes"}}, False),
        ("supabase", {}, False),
        ("better-auth", {"emailVerified": True}, True),
        ("better-auth", {"emailVerified": False}, False),
    ],
)
async def test_the_first_sign_in_copies_the_providers_email_verified_claim(
    database_url: str,
    tmp_path: Path,
    db: asyncpg.Connection,
    provider: str,
    changes: dict[str, object],
    verified: bool,
) -> None:
    settings = make_settings(
        database_url, tmp_path, SUPABASE_JWT_SECRET=SUPABASE_SECRET, BETTER_AUTH_SECRET=BETTER_AUTH_SECRET
    )
    email = f"p-{uuid.uuid4().hex[:8]}@example.com"
    if provider == "supabase":
        token = hs256(
            supabase_claims("https://abcdefgh.supabase.co", email=email, **changes), SUPABASE_SECRET
        )
    else:
        token = hs256(seed_002_claims(email=email, **changes), BETTER_AUTH_SECRET)
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["provider"] == provider
    assert me.json()["email_verified"] is verified
