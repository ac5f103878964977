"""Saved scans under conditional requests: ETags on the list and on one scan, 304 on If-None-Match."""

from __future__ import annotations

import asyncpg
import httpx

from service.settings import Settings
from tests.conftest import bearer, make_user
from tests.scans.test_history import insert_scans


async def test_the_scan_list_and_a_scan_answer_304_until_they_change(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
) -> None:
    user = await make_user(db)
    headers = bearer(settings, user)
    [older, newer] = list(reversed(await insert_scans(db, user, 2)))

    listed = await client.get("/api/scans", headers=headers)
    tag = listed.headers["etag"]
    assert (await client.get("/api/scans", headers={**headers, "If-None-Match": tag})).status_code == 304

    one = await client.get(f"/api/scans/{newer}", headers=headers)
    one_tag = one.headers["etag"]
    assert one_tag != tag
    unchanged = await client.get(f"/api/scans/{newer}", headers={**headers, "If-None-Match": one_tag})
    assert (unchanged.status_code, unchanged.content) == (304, b"")

    assert (await client.delete(f"/api/scans/{older}", headers=headers)).status_code == 204
    after = await client.get("/api/scans", headers={**headers, "If-None-Match": tag})
    assert after.status_code == 200
    assert [item["scan_id"] for item in after.json()["items"]] == [str(newer)]
    assert after.headers["etag"] != tag
