"""Every way the AI service can fail, as the frontend sees it: status, detail, Retry-After, nothing saved."""

from pathlib import Path

import asyncpg
import pytest

from service.settings import SettingsError
from tests.conftest import make_settings
from tests.scans.conftest import FAULT_TIMEOUT_SECONDS, ClientFor, FaultyAi, count_scans

TEXT = {"text": (None, "Project has tight budget and aggressive deadline")}


async def test_a_valid_answer_is_saved(
    client_for: ClientFor, faulty_ai: FaultyAi, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    async with client_for(f"{faulty_ai.url}/ok") as client:
        response = await client.post("/api/scan", headers=auth, files=TEXT)
    assert response.status_code == 201
    assert response.json()["data"] == [
        {"risk": "Budget overrun", "category": "Financial", "context": "The budget is tight."}
    ]
    assert await count_scans(db) == 1
    [seen] = faulty_ai.seen
    assert seen.path == "/ok/scan"


async def test_the_callers_token_never_reaches_the_ai_service(
    client_for: ClientFor, faulty_ai: FaultyAi, auth: dict[str, str]
) -> None:
    token = auth["Authorization"].removeprefix("Bearer ")
    async with client_for(f"{faulty_ai.url}/ok") as client:
        response = await client.post(
            "/api/scan", headers={**auth, "Cookie": "session=secret-cookie"}, files=TEXT
        )
    assert response.status_code == 201
    [seen] = faulty_ai.seen
    assert "authorization" not in seen.headers
    assert "cookie" not in seen.headers
    assert token not in str(seen.headers)
    assert token.encode() not in seen.body
    assert seen.headers["content-type"].startswith("multipart/form-data")
    assert b'name="text"\r\n\r\nProject has tight budget and aggressive deadline\r\n' in seen.body
    assert b'name="force_llm"\r\n\r\nfalse\r\n' in seen.body


@pytest.mark.parametrize(
    ("behaviour", "status", "detail"),
    [
        ("reject-422", 422, "The document has no readable text"),
        ("reject-validation", 400, "field required"),
        ("reject-text", 413, "Document too long for the model"),
    ],
)
async def test_ai_refusals_keep_their_status_and_message(
    client_for: ClientFor,
    faulty_ai: FaultyAi,
    auth: dict[str, str],
    db: asyncpg.Connection,
    behaviour: str,
    status: int,
    detail: str,
) -> None:
    async with client_for(f"{faulty_ai.url}/{behaviour}") as client:
        response = await client.post("/api/scan", headers=auth, files=TEXT)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == detail
    assert await count_scans(db) == 0


async def test_a_long_ai_message_is_shortened(
    client_for: ClientFor, faulty_ai: FaultyAi, auth: dict[str, str]
) -> None:
    async with client_for(f"{faulty_ai.url}/reject-long") as client:
        response = await client.post("/api/scan", headers=auth, files=TEXT)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("xxxx")
    assert len(detail) <= 500


async def test_ai_credentials_trouble_is_502_not_a_logout(
    client_for: ClientFor, faulty_ai: FaultyAi, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    async with client_for(f"{faulty_ai.url}/unauthorized") as client:
        response = await client.post("/api/scan", headers=auth, files=TEXT)
    assert response.status_code == 502
    assert "invalid API key" in response.json()["detail"]
    assert "www-authenticate" not in response.headers
    assert await count_scans(db) == 0


async def test_ai_rate_limit_is_503_with_its_retry_after(
    client_for: ClientFor, faulty_ai: FaultyAi, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    async with client_for(f"{faulty_ai.url}/busy") as client:
        response = await client.post("/api/scan", headers=auth, files=TEXT)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert "quota exceeded" in response.json()["detail"]
    assert await count_scans(db) == 0


@pytest.mark.parametrize(
    ("behaviour", "detail"),
    [
        ("crash", "model crashed: CUDA out of memory"),
        ("html-error", "502 Bad Gateway"),
        ("garbage", "outside its contract"),
        ("wrong-shape", "outside its contract"),
        ("wrong-source", "outside its contract"),
        ("nul-in-answer", "outside its contract"),
        ("oversized", "more than"),
        ("redirect", "redirect"),
    ],
)
async def test_ai_failures_and_malformed_answers_are_502(
    client_for: ClientFor,
    faulty_ai: FaultyAi,
    auth: dict[str, str],
    db: asyncpg.Connection,
    behaviour: str,
    detail: str,
) -> None:
    async with client_for(f"{faulty_ai.url}/{behaviour}") as client:
        response = await client.post("/api/scan", headers=auth, files=TEXT)
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    assert "<html>" not in response.json()["detail"]
    assert await count_scans(db) == 0
    assert [seen.path for seen in faulty_ai.seen] == [f"/{behaviour}/scan"], "redirects are not followed"


@pytest.mark.parametrize("behaviour", ["silent", "trickle"])
async def test_a_slow_ai_service_is_503_after_the_timeout(
    client_for: ClientFor, faulty_ai: FaultyAi, auth: dict[str, str], db: asyncpg.Connection, behaviour: str
) -> None:
    async with client_for(f"{faulty_ai.url}/{behaviour}") as client:
        response = await client.post("/api/scan", headers=auth, files=TEXT)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert f"did not answer within {FAULT_TIMEOUT_SECONDS} seconds" in response.json()["detail"]
    assert await count_scans(db) == 0


async def test_an_unreachable_ai_service_is_503(
    client_for: ClientFor, closed_port_url: str, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    async with client_for(closed_port_url) as client:
        response = await client.post("/api/scan", headers=auth, files=TEXT)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert "unreachable" in response.json()["detail"]
    assert await count_scans(db) == 0


@pytest.mark.parametrize("url", ["localhost:8082", "ftp://ai.example.com"])
def test_an_ai_service_url_without_http_is_refused_at_start_up(
    database_url: str, tmp_path: Path, url: str
) -> None:
    with pytest.raises(SettingsError, match="AI_SERVICE_URL"):
        make_settings(database_url, tmp_path, AI_SERVICE_URL=url)
