"""The caller's saved scans: newest first, keyset pages, one scan, delete; other users' scans are 404."""

import base64
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from service.settings import Settings
from tests.conftest import bearer, make_user
from tests.scans.conftest import count_scans

RISK = [{"risk": "Budget overrun", "category": "Financial", "context": "Tight budget."}]


async def insert_scans(
    db: asyncpg.Connection, user_id: uuid.UUID, count: int, *, same_instant: bool = False
) -> list[uuid.UUID]:
    """Scans created one minute apart (or all at one instant), returned newest first."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    ids = []
    for index in range(count):
        created_at = start if same_instant else start + timedelta(minutes=index)
        scan_id = await db.fetchval(
            "INSERT INTO scans (user_id, filename, data, source, created_at)"
            " VALUES ($1, $2, $3::jsonb, 'model', $4) RETURNING id",
            user_id,
            f"scan-{index}.txt",
            '[{"risk": "r", "category": "c", "context": "x"}]',
            created_at,
        )
        ids.append(scan_id)
    if same_instant:
        return sorted(ids, reverse=True)
    return list(reversed(ids))


async def read_all_pages(client: httpx.AsyncClient, auth: dict[str, str], limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/api/scans", headers=auth, params=params)
        assert response.status_code == 200
        body = response.json()
        pages.append([item["scan_id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_listing_is_newest_first_with_the_post_shape(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    posted = []
    for text in ("Budget cut.", "Vendor late.", "Security audit."):
        response = await client.post("/api/scan", headers=auth, files={"text": (None, text)})
        posted.append(response.json())
    response = await client.get("/api/scans", headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert body["items"] == list(reversed(posted))


async def test_an_empty_history(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.get("/api/scans", headers=auth)
    assert response.json() == {"items": [], "next_cursor": None}


async def test_pages_cover_every_scan_once_newest_first(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection, user_id: uuid.UUID
) -> None:
    newest_first = await insert_scans(db, user_id, 8)
    pages = await read_all_pages(client, auth, limit=3)
    assert [len(page) for page in pages] == [3, 3, 2]
    assert [uuid.UUID(i) for page in pages for i in page] == newest_first


async def test_pages_split_scans_made_at_the_same_instant(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection, user_id: uuid.UUID
) -> None:
    newest_first = await insert_scans(db, user_id, 5, same_instant=True)
    pages = await read_all_pages(client, auth, limit=2)
    assert [uuid.UUID(i) for page in pages for i in page] == newest_first


async def test_a_full_last_page_has_no_next_cursor(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection, user_id: uuid.UUID
) -> None:
    await insert_scans(db, user_id, 4)
    pages = await read_all_pages(client, auth, limit=2)
    assert [len(page) for page in pages] == [2, 2]


async def test_a_scan_made_after_the_first_page_does_not_shift_later_pages(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection, user_id: uuid.UUID
) -> None:
    newest_first = await insert_scans(db, user_id, 4)
    first = (await client.get("/api/scans", headers=auth, params={"limit": 2})).json()
    await client.post("/api/scan", headers=auth, files={"text": (None, "Budget cut.")})
    second = (
        await client.get("/api/scans", headers=auth, params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [uuid.UUID(item["scan_id"]) for item in second["items"]] == newest_first[2:]


async def test_default_page_is_20(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection, user_id: uuid.UUID
) -> None:
    await insert_scans(db, user_id, 21)
    body = (await client.get("/api/scans", headers=auth)).json()
    assert len(body["items"]) == 20
    assert body["next_cursor"]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten"])
async def test_limit_out_of_range_is_400(client: httpx.AsyncClient, auth: dict[str, str], limit: str) -> None:
    response = await client.get("/api/scans", headers=auth, params={"limit": limit})
    assert response.status_code == 400
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "%%%",
        base64.urlsafe_b64encode(b"2025-01-01T00:00:00|not-a-uuid").decode(),
        base64.urlsafe_b64encode(f"2025-01-01T00:00:00|{uuid.uuid4()}".encode()).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "x" * 1000,
    ],
    ids=["garbage", "symbols", "bad-uuid", "naive-time", "binary", "huge"],
)
async def test_a_cursor_we_did_not_issue_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], cursor: str
) -> None:
    response = await client.get("/api/scans", headers=auth, params={"cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()["detail"]


async def test_listing_shows_only_the_callers_scans(
    client: httpx.AsyncClient,
    settings: Settings,
    auth: dict[str, str],
    db: asyncpg.Connection,
    user_id: uuid.UUID,
) -> None:
    mine = await insert_scans(db, user_id, 2)
    other = await make_user(db, "other@example.com")
    await insert_scans(db, other, 3)
    body = (await client.get("/api/scans", headers=auth)).json()
    assert [uuid.UUID(item["scan_id"]) for item in body["items"]] == mine
    theirs = (await client.get("/api/scans", headers=bearer(settings, other))).json()
    assert len(theirs["items"]) == 3


async def test_another_users_scan_is_404_to_read_and_to_delete(
    client: httpx.AsyncClient, settings: Settings, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    created = await client.post("/api/scan", headers=auth, files={"text": (None, "Budget cut.")})
    scan_id = created.json()["scan_id"]
    intruder = bearer(settings, await make_user(db, "intruder@example.com"))

    read = await client.get(f"/api/scans/{scan_id}", headers=intruder)
    assert read.status_code == 404
    assert read.headers["content-type"] == "application/problem+json"
    removed = await client.delete(f"/api/scans/{scan_id}", headers=intruder)
    assert removed.status_code == 404
    assert read.json()["detail"] == removed.json()["detail"]
    missing = await client.get(f"/api/scans/{uuid.uuid4()}", headers=intruder)
    assert missing.status_code == 404, "someone else's scan looks exactly like a missing one"

    assert await count_scans(db) == 1
    assert (await client.get(f"/api/scans/{scan_id}", headers=auth)).status_code == 200


async def test_delete_removes_the_scan_and_records_who_did_it(
    client: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Connection, user_id: uuid.UUID
) -> None:
    created = await client.post(
        "/api/scan", headers=auth, files={"file": ("minutes.txt", b"The vendor is late.", "text/plain")}
    )
    scan_id = created.json()["scan_id"]
    response = await client.delete(f"/api/scans/{scan_id}", headers=auth)
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/api/scans/{scan_id}", headers=auth)).status_code == 404
    assert (await client.delete(f"/api/scans/{scan_id}", headers=auth)).status_code == 404
    assert await count_scans(db) == 0
    event = await db.fetchrow("SELECT * FROM audit_events WHERE action = 'scan.deleted'")
    assert event["actor_id"] == user_id
    assert event["target_type"] == "scan"
    assert event["target_id"] == scan_id
    assert event["details"] == '{"filename": "minutes.txt"}'


@pytest.mark.parametrize("path", ["not-a-uuid", "123", "%00", "00000000-0000-0000-0000-00000000000g"])
async def test_malformed_scan_ids_are_404(client: httpx.AsyncClient, auth: dict[str, str], path: str) -> None:
    assert (await client.get(f"/api/scans/{path}", headers=auth)).status_code == 404
    assert (await client.delete(f"/api/scans/{path}", headers=auth)).status_code == 404


async def test_scan_routes_need_a_token(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/scans"),
        await client.get(f"/api/scans/{uuid.uuid4()}"),
        await client.delete(f"/api/scans/{uuid.uuid4()}"),
    ):
        assert response.status_code == 401


async def test_deleting_a_user_deletes_their_scans(db: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await insert_scans(db, user_id, 3)
    await db.execute("DELETE FROM users WHERE id = $1", user_id)
    assert await count_scans(db) == 0
