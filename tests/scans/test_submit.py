"""POST /api/scan against the demo AI service: what a frontend gets back and what is kept."""

import re
import uuid
from datetime import datetime

import asyncpg
import httpx

from tests.scans.conftest import count_scans, make_docx


async def test_text_scan_is_analysed_saved_and_returned(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection, user_id: uuid.UUID
) -> None:
    response = await client.post(
        "/api/scan", headers=auth, files={"text": (None, "Project has tight budget and aggressive deadline")}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"scan_id", "data", "source", "timestamp"}
    assert body["source"] == "model"
    assert body["filename"] is None
    assert {risk["category"] for risk in body["data"]} == {"Financial", "Schedule"}
    for risk in body["data"]:
        assert set(risk) == {"risk", "category", "context"}
        assert risk["context"] == "Project has tight budget and aggressive deadline"
    assert body["id"] == body["scan_id"]
    assert list(body["data"][0]) == ["risk", "category", "context"], "the contract's field order"
    stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert stamp.tzinfo is not None

    row = await db.fetchrow("SELECT * FROM scans WHERE id = $1", uuid.UUID(body["scan_id"]))
    assert row["user_id"] == user_id
    assert row["source"] == "model"
    assert row["created_at"] == stamp
    stored = await db.fetchval("SELECT data::text FROM scans WHERE id = $1", row["id"])
    assert "aggressive deadline" in stored

    again = await client.get(f"/api/scans/{body['scan_id']}", headers=auth)
    assert again.status_code == 200
    assert again.json() == body


async def test_text_file_scan_keeps_the_filename(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    notes = b"Kickoff notes.\nThe vendor contract has no security review yet.\nLunch was good."
    response = await client.post(
        "/api/scan", headers=auth, files={"file": ("notes.txt", notes, "text/plain")}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["filename"] == "notes.txt"
    assert {risk["category"] for risk in body["data"]} == {"Vendor", "Security"}
    assert {risk["context"] for risk in body["data"]} == {"The vendor contract has no security review yet."}


async def test_docx_sent_as_octet_stream_is_accepted_by_extension(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    document = make_docx("Status report.", "We depend on a third-party API with no SLA.")
    response = await client.post(
        "/api/scan",
        headers=auth,
        files={"file": ("C:\\Users\\me\\report.docx", document, "application/octet-stream")},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["filename"] == "report.docx"
    assert [risk["category"] for risk in body["data"]] == ["Dependency"]


async def test_file_and_text_are_scanned_together(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post(
        "/api/scan",
        headers=auth,
        files={
            "file": ("plan.md", b"# Plan\n\nHiring is frozen.", "text/markdown"),
            "text": (None, "GDPR audit."),
        },
    )
    assert response.status_code == 201
    assert {risk["category"] for risk in response.json()["data"]} == {"Resource", "Compliance"}


async def test_force_llm_asks_for_the_llm(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    expected = {
        "true": "llm",
        "On": "llm",
        "1": "llm",
        "yes": "llm",
        "false": "model",
        "0": "model",
        "off": "model",
    }
    for value, source in expected.items():
        response = await client.post(
            "/api/scan", headers=auth, files={"text": (None, "Tight budget."), "force_llm": (None, value)}
        )
        assert response.status_code == 201
        assert response.json()["source"] == source, f"force_llm={value}"


async def test_force_llm_must_be_a_boolean(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/scan", headers=auth, files={"text": (None, "Tight budget."), "force_llm": (None, "maybe")}
    )
    assert response.status_code == 400
    assert "force_llm" in response.json()["detail"]
    assert await count_scans(db) == 0


async def test_scan_without_findings_is_still_saved(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post("/api/scan", headers=auth, files={"text": (None, "All is well.")})
    assert response.status_code == 201
    assert response.json()["data"] == []


async def test_versioned_path_works_too(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post("/api/v1/scan", headers=auth, files={"text": (None, "Budget cut.")})
    assert response.status_code == 201
    listed = await client.get("/api/v1/scans", headers=auth)
    assert [item["scan_id"] for item in listed.json()["items"]] == [response.json()["scan_id"]]


async def test_scan_needs_a_token(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    response = await client.post("/api/scan", files={"text": (None, "Budget cut.")})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await count_scans(db) == 0


async def test_openapi_documents_the_form_and_its_answers(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/api/scan"]["post"]
    schema_ref = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    form = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert set(form["properties"]) == {"file", "text", "force_llm"}
    assert {"201", "400", "401", "413", "415", "502", "503"} <= set(operation["responses"])
    assert re.search(r"\.docx", form["properties"]["file"]["description"])
