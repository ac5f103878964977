"""The scan form's own bounds (service.http.forms, service.scans.uploads): each refusal a clear 4xx
whose detail says which bound, never Litestar's 400 "Request Entity Too Large"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx

from service.app import create_app
from service.http.forms import MAX_PART_HEADER_BYTES
from service.scans.uploads import BUSY_RETRY_AFTER_SECONDS, FORCE_LLM_MAX_BYTES, MAX_SCAN_FORM_FIELDS
from tests.conftest import make_settings, running
from tests.scans.conftest import TEST_MAX_UPLOAD_BYTES, FaultyAi, count_scans

URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_a_file_name_too_long_for_a_part_header_is_400_saying_so(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/scan", headers=auth, files={"file": ("a" * 5000 + ".txt", b"budget", "text/plain")}
    )
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "Request Entity Too Large" not in detail
    assert f"longer than {MAX_PART_HEADER_BYTES} bytes" in detail
    assert "file name" in detail
    assert await count_scans(db) == 0


async def test_a_long_file_name_within_the_header_limit_is_kept_to_255_characters(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    name = "r" * 1000 + "eport.txt"
    response = await client.post("/api/scan", headers=auth, files={"file": (name, b"budget", "text/plain")})
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == name[-255:]


async def test_more_parts_than_the_form_has_fields_is_400(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    files = [("text", (None, "budget"))] * (MAX_SCAN_FORM_FIELDS + 1)
    response = await client.post("/api/scan", headers=auth, files=files)
    assert response.status_code == 400
    assert f"at most {MAX_SCAN_FORM_FIELDS} fields" in response.json()["detail"]


async def test_an_unknown_multipart_field_is_400_naming_it(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    files = {"text": (None, "budget"), "colour": (None, "red")}
    response = await client.post("/api/scan", headers=auth, files=files)
    assert response.status_code == 400
    assert "unknown field `colour`" in response.json()["detail"]


async def test_text_sent_as_a_file_part_is_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post(
        "/api/scan", headers=auth, files={"text": ("t.txt", b"budget", "text/plain")}
    )
    assert response.status_code == 400
    assert "send `text` as a text field" in response.json()["detail"]


async def test_field_and_file_limits_are_413_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    long_flag = {"text": (None, "budget"), "force_llm": (None, "t" * (FORCE_LLM_MAX_BYTES + 1))}
    response = await client.post("/api/scan", headers=auth, files=long_flag)
    assert response.status_code == 413
    assert response.json()["detail"] == f"`force_llm` is larger than {FORCE_LLM_MAX_BYTES} bytes"

    too_big = b"b" * (TEST_MAX_UPLOAD_BYTES + 1)
    response = await client.post(
        "/api/scan", headers=auth, files={"file": ("big.txt", too_big, "text/plain")}
    )
    assert response.status_code == 413
    assert str(TEST_MAX_UPLOAD_BYTES) in response.json()["detail"]

    # Within the body limit (the limit + 64 KiB), over the text limit once decoded.
    text = "%41" * 1000 + "A" * (TEST_MAX_UPLOAD_BYTES - 999)
    response = await client.post("/api/scan", headers={**auth, **URLENCODED}, content=f"text={text}".encode())
    assert response.status_code == 413
    assert response.json()["detail"] == f"`text` is larger than {TEST_MAX_UPLOAD_BYTES} bytes"
    assert await count_scans(db) == 0


async def test_urlencoded_text_is_utf8_whether_escaped_or_not(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for body in (b"text=Budget+%C3%BCber+Plan", "text=Budget+über+Plan".encode()):
        response = await client.post("/api/scan", headers={**auth, **URLENCODED}, content=body)
        assert response.status_code == 201, response.text
        assert response.json()["data"][0]["context"] == "Budget über Plan"
    response = await client.post("/api/scan", headers={**auth, **URLENCODED}, content=b"text=%FF%FE")
    assert response.status_code == 400
    assert response.json()["detail"] == "form fields must be UTF-8 text"


async def test_a_file_over_the_spool_threshold_reaches_the_ai_service_whole(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # TEST_MAX_UPLOAD_BYTES is 32 KiB; the spool threshold (1 MiB) is crossed in
    # test_upload_bounds.py against a real server. Here: a file the size of the limit, byte exact.
    content = b"The deadline moved. " + b"z" * (TEST_MAX_UPLOAD_BYTES - 40) + b" The budget is cut."
    response = await client.post(
        "/api/scan", headers=auth, files={"file": ("plan.txt", content, "text/plain")}
    )
    assert response.status_code == 201, response.text
    assert {risk["category"] for risk in response.json()["data"]} == {"Schedule", "Financial"}


async def test_the_upload_bound_is_per_worker_across_api_and_api_v1(
    database_url: str, tmp_path: Path, auth: dict[str, str], faulty_ai: FaultyAi
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        AI_SERVICE_URL=f"{faulty_ai.url}/silent",
        AI_SERVICE_TIMEOUT_SECONDS="2",
        SCAN_MAX_CONCURRENT_UPLOADS="1",
    )
    async with running(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            waiting = asyncio.create_task(
                client.post("/api/scan", headers=auth, files={"text": (None, "budget")})
            )
            while not faulty_ai.seen:  # the first scan is at the AI service, holding the one slot
                await asyncio.sleep(0.01)
            busy = await client.post("/api/v1/scan", headers=auth, files={"text": (None, "budget")})
            assert busy.status_code == 503
            assert busy.headers["Retry-After"] == str(BUSY_RETRY_AFTER_SECONDS)
            assert busy.json()["detail"] == "this server is busy with 1 scan uploads; retry shortly"
            assert (await waiting).status_code == 503  # the silent AI service's timeout
            after = await client.post("/api/v1/scan", headers=auth, files={"text": (None, "budget")})
            # The slot was given back: this one reached the (silent) AI service, whose 503 says 5 s.
            assert after.status_code == 503
            assert after.headers["Retry-After"] == "5"
