"""Which address is the client: X-Forwarded-For only through TRUSTED_PROXIES, right-most untrusted hop."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from service.http.client_ip import ClientAddressResolver
from service.settings import SettingsError
from tests.conftest import bearer, make_settings, make_user
from tests.operations.conftest import AppClient

PROXIES = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]


def scope(peer: str | None, *forwarded: str) -> Any:
    return {
        "type": "http",
        "client": (peer, 1234) if peer else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.5", ["1.2.3.4"], "203.0.113.5"),  # an untrusted peer is the client, whatever it says
        ("10.1.1.1", [], "10.1.1.1"),  # a proxy with no header is the client
        ("10.1.1.1", ["198.51.100.4"], "198.51.100.4"),
        ("10.1.1.1", ["6.6.6.6, 198.51.100.4"], "198.51.100.4"),  # the client's own claim is ignored
        ("10.1.1.1", ["198.51.100.4, 10.2.2.2, 192.0.2.7"], "198.51.100.4"),  # a chain of proxies
        ("10.1.1.1", ["6.6.6.6", "198.51.100.4"], "198.51.100.4"),  # header lines joined in order
        ("10.1.1.1", ["10.9.9.9, 10.8.8.8"], "10.9.9.9"),  # only proxies: the farthest one
        ("10.1.1.1", ["198.51.100.4, not-an-ip"], "10.1.1.1"),  # garbage: the last hop we trust
        ("10.1.1.1", ["198.51.100.4, not-an-ip, 10.3.3.3"], "10.3.3.3"),
        ("::ffff:10.1.1.1", ["198.51.100.4"], "198.51.100.4"),  # IPv4 seen through a dual-stack socket
        ("2001:db8::1", ["2001:DB8:FFFF::1, 2a00:1450::1"], "2a00:1450::1"),
        (None, ["198.51.100.4"], None),
    ],
)
def test_resolution(peer: str | None, forwarded: list[str], client: str | None) -> None:
    assert ClientAddressResolver(PROXIES).resolve(scope(peer, *forwarded)) == client


def test_without_trusted_proxies_the_header_never_counts() -> None:
    assert ClientAddressResolver([]).resolve(scope("10.1.1.1", "198.51.100.4")) == "10.1.1.1"


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "proxy.example", "300.1.1.1"])
def test_a_bad_trusted_proxy_entry_stops_start_up(database_url: str, tmp_path: Any, entry: str) -> None:
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        make_settings(database_url, tmp_path, TRUSTED_PROXIES=f"127.0.0.1, {entry}")


async def test_audit_rows_record_the_resolved_client(
    app_client: AppClient, db: asyncpg.Connection, database_url: str, tmp_path: Any
) -> None:
    settings = make_settings(database_url, tmp_path)
    admin = await make_user(db, role="admin")
    target = await make_user(db)
    async with app_client(peer="10.0.0.2", TRUSTED_PROXIES="10.0.0.0/8") as client:
        response = await client.patch(
            f"/api/users/{target}",
            json={"full_name": "Ada"},
            headers={**bearer(settings, admin), "X-Forwarded-For": "6.6.6.6, 198.51.100.4"},
        )
    assert response.status_code == 200
    assert await db.fetchval("SELECT ip FROM audit_events") == "198.51.100.4"
