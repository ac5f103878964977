"""Readiness follows the database: 503 while it is down, 200 again without restarting the service."""

from pathlib import Path

import httpx

from service.app import create_app
from service.db import migrations
from service.db.embedded import EmbeddedPostgres
from tests.conftest import make_settings, running


async def test_ready_goes_503_while_the_database_is_down_and_recovers(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "db")
    url = server.start()
    try:
        migrations.apply_pending(url)
        app = create_app(make_settings(url, tmp_path))
        async with running(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                assert (await http.get("/health/ready")).status_code == 200

                server.stop()
                down = await http.get("/health/ready")
                assert down.status_code == 503
                assert down.headers["content-type"] == "application/problem+json"
                assert int(down.headers["retry-after"]) > 0
                assert "database" in down.json()["detail"]
                assert (await http.get("/health")).status_code == 200

                assert server.start() == url, "the server comes back on the same port"
                statuses = [(await http.get("/health/ready")).status_code for _ in range(3)]
                assert statuses[-1] == 200
    finally:
        server.stop()
