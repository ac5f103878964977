"""Health, docs, CORS, problem+json, request ids and security headers over real HTTP semantics."""

import re

import httpx
import pytest

from tests.conftest import make_settings, running


async def test_health_never_needs_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


async def test_ready_runs_a_query(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_openapi_document_is_3_1(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert "/health" in document["paths"]
    assert document["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_assets_served_here(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    head = html.split("<body")[0]
    assert "http://" not in head, "no CDN in the page head"
    assert "https://" not in head, "no CDN in the page head"
    assets = re.findall(r"""(?:src|href)=['"](/static/[^'"]+)['"]""", html)
    assert assets, "the page loads its scripts from /static"
    for asset in assets:
        asset_response = await client.get(asset)
        assert asset_response.status_code == 200, asset
        assert len(asset_response.content) > 500


async def test_swagger_ui_is_version_5(client: httpx.AsyncClient) -> None:
    bundle = await client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert re.search(rb'PACKAGE_VERSION:"5\.\d+\.\d+"', bundle.content)


async def test_unknown_route_is_problem_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["detail"]
    assert body["instance"] == "/no/such/route"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_wrong_method_is_problem_json_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert "DELETE" in response.json()["detail"]
    assert "GET" in response.headers["allow"]


async def test_request_id_is_generated_or_echoed(client: httpx.AsyncClient) -> None:
    generated = await client.get("/health")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123.def"})
    assert echoed.headers["x-request-id"] == "abc-123.def"
    hostile = await client.get("/health", headers={"X-Request-ID": "bad id;<script>" * 3})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])


@pytest.mark.parametrize("path", ["/health", "/no/such/route", "/docs"])
async def test_security_headers_everywhere_and_no_hsts_in_development(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers


async def test_hsts_in_production(database_url: str, tmp_path) -> None:
    from service.app import create_app

    settings = make_settings(database_url, tmp_path, ENVIRONMENT="production")
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get("/health")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_cors_allows_configured_origins_with_credentials(client: httpx.AsyncClient) -> None:
    for origin in ("http://localhost:3000", "http://localhost:5173", "http://localhost:8080"):
        preflight = await client.options(
            "/health",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == origin
        assert preflight.headers["access-control-allow-credentials"] == "true"
        simple = await client.get("/health", headers={"Origin": origin})
        assert simple.headers["access-control-allow-origin"] == origin


async def test_cors_refuses_other_origins(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/health", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    simple = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers
