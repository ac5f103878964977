"""Helpers for the two-factor tests: enrol a registered user as a frontend does, and TOTP codes
of a chosen time step (one code is accepted once, so each step in a test is used once)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pyotp

from tests.accounts.conftest import STRONG_PASSWORD, auth, login

STEP = 30


def wait_clear_of_step_boundary(margin: float = 3.0) -> None:
    """A code computed here must still be of the same step when the server checks it."""
    into = time.time() % STEP
    if into > STEP - margin:
        time.sleep(STEP - into + 0.1)


def code_at(secret: str, steps_from_now: int) -> str:
    """The code of the time step `steps_from_now` away (the server accepts -1, 0 and +1)."""
    return pyotp.TOTP(secret).at(time.time() + steps_from_now * STEP)


async def enrol(client: httpx.AsyncClient, access_token: str, password: str = STRONG_PASSWORD) -> str:
    response = await client.post(
        "/api/auth/2fa/totp", json={"current_password": password}, headers=auth(access_token)
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body["secret"]


async def enrolled(client: httpx.AsyncClient, access_token: str) -> tuple[str, list[str]]:
    """Two-factor turned on with the previous step's code: (secret, backup codes). The current
    and the next step's codes are left for the test."""
    secret = await enrol(client, access_token)
    wait_clear_of_step_boundary()
    response = await client.post(
        "/api/auth/2fa/totp/confirm", json={"code": code_at(secret, -1)}, headers=auth(access_token)
    )
    assert response.status_code == 200, response.text
    codes: list[str] = response.json()["backup_codes"]
    return secret, codes


async def challenge(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, Any]:
    response = await login(client, email)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["mfa_required"] is True
    return body


async def verify(client: httpx.AsyncClient, mfa_token: str, code: str) -> httpx.Response:
    return await client.post("/api/auth/2fa/verify", json={"mfa_token": mfa_token, "code": code})
