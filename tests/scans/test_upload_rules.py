"""What POST /api/scan refuses before the AI service is ever called, and what it forwards."""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from service.scans.routes import FORM_OVERHEAD_BYTES
from tests.scans.conftest import TEST_MAX_UPLOAD_BYTES, ClientFor, FaultyAi, count_scans, make_docx

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
BOUNDARY = "scanboundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def _raw_form(*parts: bytes) -> bytes:
    return b"".join(b"--" + BOUNDARY.encode() + b"\r\n" + part + b"\r\n" for part in parts) + (
        b"--" + BOUNDARY.encode() + b"--\r\n"
    )


def _text_part(value: bytes, extra_headers: bytes = b"") -> bytes:
    return b'Content-Disposition: form-data; name="text"\r\n' + extra_headers + b"\r\n" + value


@pytest.mark.parametrize(
    "files",
    [
        {"text": (None, "")},
        {"text": (None, "   \n\t ")},
        {"file": ("empty.txt", b"", "text/plain")},
        {"force_llm": (None, "true")},
    ],
    ids=["empty-text", "blank-text", "empty-file", "only-force-llm"],
)
async def test_a_file_or_text_is_required(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection, files: dict[str, tuple]
) -> None:
    response = await client.post("/api/scan", headers=auth, files=files)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert await count_scans(db) == 0


async def test_an_empty_multipart_body_is_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post(
        "/api/scan", headers={**auth, "Content-Type": MULTIPART}, content=_raw_form()
    )
    assert response.status_code == 400
    assert "file" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        _raw_form(_text_part(b"tight bud\x00get")),
        _raw_form(
            b'Content-Disposition: form-data; name="file"; filename="a\x00.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\nbudget"
        ),
    ],
    ids=["text", "filename"],
)
async def test_nul_characters_are_400(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection, body: bytes
) -> None:
    response = await client.post("/api/scan", headers={**auth, "Content-Type": MULTIPART}, content=body)
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
    assert await count_scans(db) == 0


@pytest.mark.parametrize(
    "part",
    [
        _text_part(b"\xff\xfe budget"),
        _text_part(b"budget", b"Content-Type: text/plain; charset=no-such-charset\r\n"),
        b'Content-Disposition: form-data; name="text"\r\n\r\ncut off',
    ],
    ids=["invalid-utf8", "unknown-charset", "unterminated"],
)
async def test_undecodable_forms_are_400(
    client: httpx.AsyncClient, auth: dict[str, str], part: bytes
) -> None:
    body = _raw_form(part) if b"cut off" not in part else b"--" + BOUNDARY.encode() + b"\r\n" + part
    response = await client.post("/api/scan", headers={**auth, "Content-Type": MULTIPART}, content=body)
    assert response.status_code == 400


async def test_unknown_form_fields_are_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post(
        "/api/scan", headers=auth, files={"text": (None, "budget"), "user_id": (None, str(uuid.uuid4()))}
    )
    assert response.status_code == 400
    assert "user_id" in response.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        ({"Content-Type": "application/json"}, b'{"text": "budget"}'),
        ({"Content-Type": "text/plain"}, b"text=budget"),
        ({}, b"budget"),
    ],
    ids=["json", "text-plain", "untyped"],
)
async def test_bodies_other_than_forms_are_415(
    client: httpx.AsyncClient, auth: dict[str, str], headers: dict[str, str], content: bytes
) -> None:
    response = await client.post("/api/scan", headers={**auth, **headers}, content=content)
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]


UNSUPPORTED = {
    "an image": ("photo.png", b"\x89PNG\r\n\x1a\n", "image/png"),
    "an executable": ("setup.exe", b"MZ\x90\x00", "application/octet-stream"),
    "a zip": ("archive.zip", b"PK\x03\x04", "application/zip"),
    "a type contradicting the extension": ("notes.txt", b"%PDF-1.7", "application/pdf"),
    "a fake PDF": ("report.pdf", b"budget and deadline", "application/pdf"),
    "a fake DOCX": ("report.docx", b"budget and deadline", DOCX),
    "an untyped file without extension": ("blob", b"budget", "application/octet-stream"),
}


async def test_unsupported_documents_are_415_and_not_sent(
    client_for: ClientFor, faulty_ai: FaultyAi, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    async with client_for(f"{faulty_ai.url}/ok") as client:
        for case, upload in UNSUPPORTED.items():
            response = await client.post("/api/scan", headers=auth, files={"file": upload})
            assert response.status_code == 415, case
            assert response.json()["detail"], case
    assert faulty_ai.seen == []
    assert await count_scans(db) == 0


ACCEPTED = [
    # filename, content, declared type, type forwarded to the AI service
    ("report.pdf", b"%PDF-1.7\nbudget", "application/pdf", "application/pdf"),
    ("report.PDF", b"%PDF-1.4\nbudget", "application/octet-stream", "application/pdf"),
    ("plan.docx", make_docx("budget"), DOCX, DOCX),
    ("plan.docx", make_docx("budget"), "application/octet-stream", DOCX),
    ("notes.md", b"# budget", "application/octet-stream", "text/markdown"),
    ("data.csv", b"item,cost\nvendor,100", "application/vnd.ms-excel", "text/csv"),
    ("blob", b"budget", "text/plain", "text/plain"),
]


async def test_accepted_documents_reach_the_ai_service_with_their_type(
    client_for: ClientFor, faulty_ai: FaultyAi, auth: dict[str, str]
) -> None:
    async with client_for(f"{faulty_ai.url}/ok") as client:
        for filename, content, declared, forwarded in ACCEPTED:
            faulty_ai.seen.clear()
            response = await client.post(
                "/api/scan", headers=auth, files={"file": (filename, content, declared)}
            )
            assert response.status_code == 201, (filename, declared)
            assert response.json()["filename"] == filename
            [seen] = faulty_ai.seen
            assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
            part_head = f'name="file"; filename="{filename}"\r\nContent-Type: {forwarded}\r\n\r\n'
            assert part_head.encode() + content in seen.body, (filename, declared)


async def test_a_file_of_exactly_the_limit_is_accepted(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    content = (b"The budget is tight. " * TEST_MAX_UPLOAD_BYTES)[:TEST_MAX_UPLOAD_BYTES]
    response = await client.post(
        "/api/scan", headers=auth, files={"file": ("big.txt", content, "text/plain")}
    )
    assert response.status_code == 201


async def test_a_file_over_the_limit_is_413_and_not_sent(
    client_for: ClientFor, faulty_ai: FaultyAi, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    content = b"x" * (TEST_MAX_UPLOAD_BYTES + 1)
    async with client_for(f"{faulty_ai.url}/ok") as client:
        response = await client.post(
            "/api/scan", headers=auth, files={"file": ("big.txt", content, "text/plain")}
        )
    assert response.status_code == 413
    assert str(TEST_MAX_UPLOAD_BYTES) in response.json()["detail"]
    assert faulty_ai.seen == []
    assert await count_scans(db) == 0


async def test_text_over_the_limit_is_413(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post(
        "/api/scan", headers=auth, files={"text": (None, "budget " * (TEST_MAX_UPLOAD_BYTES // 7 + 1))}
    )
    assert response.status_code == 413


class CountingBody:
    """A request body produced chunk by chunk, counting how much the server asked for."""

    def __init__(self, total: int, chunk: int = 16 * 1024) -> None:
        self.total = total
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="huge.txt"\r\n\r\n'
        yield head.encode()
        while self.sent < self.total:
            self.sent += self.chunk
            yield b"x" * self.chunk
        yield f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize("announce_length", [True, False], ids=["content-length", "chunked"])
async def test_a_huge_body_is_refused_before_it_is_read_whole(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection, announce_length: bool
) -> None:
    body = CountingBody(total=4 * 1024 * 1024)
    headers = {**auth, "Content-Type": MULTIPART}
    if announce_length:
        headers["Content-Length"] = str(body.total + 200)
    response = await client.post("/api/scan", headers=headers, content=body)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert str(TEST_MAX_UPLOAD_BYTES) in response.json()["detail"]
    limit = TEST_MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES
    assert body.sent <= (0 if announce_length else limit + body.chunk) + body.chunk
    assert await count_scans(db) == 0


async def test_an_anonymous_huge_body_is_401_without_reading_it(client: httpx.AsyncClient) -> None:
    body = CountingBody(total=4 * 1024 * 1024)
    response = await client.post("/api/scan", headers={"Content-Type": MULTIPART}, content=body)
    assert response.status_code == 401
    assert body.sent <= body.chunk
