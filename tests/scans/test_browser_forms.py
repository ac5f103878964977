"""POST /api/scan as browsers and HTML forms send it: byte for byte what Chromium and Firefox put
on the wire for a form with an empty file input, urlencoded forms, and what a filename may carry."""

import uuid

import asyncpg
import httpx

from tests.scans.conftest import count_scans

# Chromium's boundary style and part layout for <input type=file> left empty: a part with
# filename="" and Content-Type application/octet-stream, and no bytes.
BROWSER_BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
EMPTY_FILE_PART = (
    b'Content-Disposition: form-data; name="file"; filename=""\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n"
)


def browser_form(*parts: bytes) -> tuple[dict[str, str], bytes]:
    delimiter = b"--" + BROWSER_BOUNDARY.encode()
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts) + delimiter + b"--\r\n"
    return {"Content-Type": f"multipart/form-data; boundary={BROWSER_BOUNDARY}"}, body


def field_part(name: str, value: str) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}'.encode()


async def test_a_form_with_an_empty_file_input_scans_its_text(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    headers, body = browser_form(
        EMPTY_FILE_PART, field_part("text", "Project has tight budget"), field_part("force_llm", "false")
    )
    response = await client.post("/api/scan", headers={**auth, **headers}, content=body)
    assert response.status_code == 201, response.text
    assert response.json()["filename"] is None
    assert [risk["category"] for risk in response.json()["data"]] == ["Financial"]
    assert await count_scans(db) == 1


async def test_an_empty_file_input_and_empty_text_is_still_400(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    headers, body = browser_form(EMPTY_FILE_PART, field_part("text", ""))
    response = await client.post("/api/scan", headers={**auth, **headers}, content=body)
    assert response.status_code == 400
    assert response.json()["detail"] == "provide a file or a non-empty text"
    assert await count_scans(db) == 0


async def test_a_nameless_file_part_with_bytes_is_400(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    headers, body = browser_form(EMPTY_FILE_PART + b"budget")
    response = await client.post("/api/scan", headers={**auth, **headers}, content=body)
    assert response.status_code == 400
    assert "with a filename" in response.json()["detail"]


async def test_an_urlencoded_text_scan_is_accepted(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    # What seed 004's FastAPI `Form()` clients post, and what <form> sends without enctype.
    response = await client.post(
        "/api/scan",
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
        content=b"text=Project+has+tight+budget+and+aggressive+deadline&force_llm=on",
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filename"] is None
    assert body["source"] == "llm"
    assert {risk["category"] for risk in body["data"]} == {"Financial", "Schedule"}
    assert await count_scans(db) == 1


URLENCODED_REFUSALS = {
    b"text=": "provide a file or a non-empty text",
    b"file=notes.txt": "send the file as a multipart/form-data file part",
    b"text=a&text=b": "send one `text` field per scan, not 2",
    b"text=budget&colour=red": "colour",
}


async def test_urlencoded_refusals_are_400(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    for content, detail in URLENCODED_REFUSALS.items():
        response = await client.post(
            "/api/scan",
            headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
            content=content,
        )
        assert response.status_code == 400, content
        assert response.headers["content-type"] == "application/problem+json"
        assert detail in response.json()["detail"], content
    assert await count_scans(db) == 0


async def test_two_file_parts_are_refused_with_a_clear_message(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/scan",
        headers=auth,
        files=[("file", ("a.txt", b"budget", "text/plain")), ("file", ("b.txt", b"deadline", "text/plain"))],
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "file: send one file per scan, not 2"
    assert await count_scans(db) == 0


FILENAMES = {
    "report\r\nSet-Cookie: x.txt": "reportSet-Cookie: x.txt",
    "\x1b[31mred\x1b[0m.txt": "[31mred[0m.txt",
    "invoice\u202etxt.exe.txt": "invoicetxt.exe.txt",
    "\u2066isolated\u2069 \u200fmark.txt": "isolated mark.txt",
    "line\u2028break\x85.txt": "linebreak.txt",
    "Отчёт 2026 📄 données.txt": "Отчёт 2026 📄 données.txt",
    "family 👨\u200d👩\u200d👧.txt": "family 👨\u200d👩\u200d👧.txt",
    "تقرير.txt": "تقرير.txt",
}


async def test_filenames_lose_control_and_bidi_characters_and_keep_the_rest(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    for sent, kept in FILENAMES.items():
        response = await client.post(
            "/api/scan", headers=auth, files={"file": (sent, b"budget", "text/plain")}
        )
        assert response.status_code == 201, response.text
        assert response.json()["filename"] == kept, repr(sent)
        stored = await db.fetchval(
            "SELECT filename FROM scans WHERE id = $1", uuid.UUID(response.json()["id"])
        )
        assert stored == kept, repr(sent)


async def test_a_filename_of_only_control_characters_has_no_name(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/api/scan", headers=auth, files={"file": ("\r\n\u202e\x1b", b"budget", "text/plain")}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "file: the file has no name"
