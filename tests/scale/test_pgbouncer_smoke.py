import asyncio

import httpx

from service.app import create_app
from tests.conftest import make_settings, running


async def test_the_service_runs_behind_pgbouncer_in_transaction_mode(pgbouncer_url: str, tmp_path) -> None:
    app = create_app(make_settings(pgbouncer_url, tmp_path, DATABASE_POOLER="transaction"))
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            statuses = await asyncio.gather(*(http.get("/health/ready") for _ in range(50)))
    assert {response.status_code for response in statuses} == {200}
