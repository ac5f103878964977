"""Request bodies, through a real JSON route (register): field-naming 400s, 413 and 415."""

import httpx
import pytest

from tests.accounts.conftest import STRONG_PASSWORD

REGISTER = "/api/auth/register"


async def test_a_400_names_the_offending_field(client: httpx.AsyncClient) -> None:
    response = await client.post(REGISTER, json={"email": "not-an-email", "password": STRONG_PASSWORD})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["errors"] == [{"field": "email", "message": body["errors"][0]["message"], "source": "body"}]
    assert body["detail"].startswith("email: ")
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "a@example.com", "password": STRONG_PASSWORD, "is_admin": True}, "is_admin"),
        ({"email": "a@example.com"}, "password"),
        ({"email": ["a@example.com"], "password": STRONG_PASSWORD}, "email"),
    ],
)
async def test_unknown_missing_and_mistyped_fields_are_named(
    client: httpx.AsyncClient, payload: dict[str, object], field: str
) -> None:
    response = await client.post(REGISTER, json=payload)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert field in response.json()["detail"]


async def test_malformed_or_non_object_json_is_400(client: httpx.AsyncClient) -> None:
    for content in (b"{", b"[]", b"null", b'"text"', b"\xff\xfe"):
        response = await client.post(REGISTER, content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, content
        assert response.json()["detail"]


async def test_a_body_over_one_mebibyte_is_413(client: httpx.AsyncClient) -> None:
    padding = "x" * (1024 * 1024)
    response = await client.post(REGISTER, json={"email": "a@example.com", "password": padding})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_json_route_refuses_other_content_types(client: httpx.AsyncClient) -> None:
    body = b'{"email": "a@example.com", "password": "correct horse battery staple"}'
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ):
        response = await client.post(REGISTER, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 415, content_type
        assert "application/json" in response.json()["detail"]


async def test_json_with_a_charset_or_a_suffix_type_is_json(client: httpx.AsyncClient) -> None:
    for index, content_type in enumerate(["application/json; charset=utf-8", "application/merge-patch+json"]):
        body = f'{{"email": "a{index}@example.com", "password": "{STRONG_PASSWORD}"}}'.encode()
        response = await client.post(REGISTER, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 201
