"""The demo AI service keeps seed 004's contract, over real HTTP, and `service demo-ai` starts it."""

from pathlib import Path

import httpx
import pytest

from tests.processes import demo_ai
from tests.scans.conftest import make_docx


async def scan(url: str, **fields: tuple[str | None, bytes | str, str] | tuple[None, str]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{url}/scan", files=fields)


async def test_risks_come_with_category_and_their_sentence(demo_ai_url: str) -> None:
    text = (
        "Kickoff went well. The budget is already stretched and the deadline is aggressive! "
        "We depend on a single vendor.\nStaffing is thin; two engineers left."
    )
    response = await scan(demo_ai_url, text=(None, text))
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "model"
    found = {(risk["category"], risk["context"]) for risk in body["data"]}
    assert found == {
        ("Financial", "The budget is already stretched and the deadline is aggressive!"),
        ("Schedule", "The budget is already stretched and the deadline is aggressive!"),
        ("Dependency", "We depend on a single vendor."),
        ("Vendor", "We depend on a single vendor."),
        ("Resource", "Staffing is thin; two engineers left."),
    }
    assert all(risk["risk"] for risk in body["data"])


@pytest.mark.parametrize(("flag", "source"), [("true", "llm"), ("on", "llm"), ("false", "model")])
async def test_force_llm_reports_the_llm(demo_ai_url: str, flag: str, source: str) -> None:
    response = await scan(demo_ai_url, text=(None, "Compliance gap."), force_llm=(None, flag))
    assert response.json()["source"] == source


async def test_text_and_docx_uploads_are_read(demo_ai_url: str) -> None:
    text_file = await scan(demo_ai_url, file=("notes.md", b"# Notes\nGDPR audit next week.", "text/markdown"))
    assert [risk["category"] for risk in text_file.json()["data"]] == ["Compliance"]
    word = await scan(
        demo_ai_url, file=("plan.docx", make_docx("A legacy system.", "Fine."), "application/zip")
    )
    assert word.json()["data"][0]["context"] == "A legacy system."


async def test_neither_file_nor_text_is_400_with_a_detail(demo_ai_url: str) -> None:
    response = await scan(demo_ai_url, force_llm=(None, "true"))
    assert response.status_code == 400
    assert response.json() == {"detail": "Provide a file or text to scan"}


@pytest.mark.parametrize(
    ("filename", "content", "content_type"),
    [
        ("report.pdf", b"%PDF-1.7 binary", "application/pdf"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00", "text/plain"),
        ("broken.docx", b"PK\x03\x04 not a zip", "application/octet-stream"),
    ],
)
async def test_binary_it_cannot_read_is_415(
    demo_ai_url: str, filename: str, content: bytes, content_type: str
) -> None:
    response = await scan(demo_ai_url, file=(filename, content, content_type))
    assert response.status_code == 415
    assert filename in response.json()["detail"]


def test_the_demo_ai_command_serves_the_contract(tmp_path: Path) -> None:
    with demo_ai(tmp_path) as url:
        response = httpx.post(f"{url}/scan", files={"text": (None, "Tight budget.")}, timeout=5)
    assert response.json()["source"] == "model"
    assert response.json()["data"][0]["category"] == "Financial"
