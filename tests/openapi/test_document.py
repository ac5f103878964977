"""The OpenAPI document follows the rules that generators, linters and Swagger UI rely on.

New routes are held to them too: an operation without `operation_id=`, without a declared tag,
without a `security` decision or with a non-problem+json error fails here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx

from service.http.openapi import LOGIN_PATH
from tests.openapi.conftest import operations

# Verbs an operation id may start with; add one here when a route needs a new kind of action.
VERBS = {
    "get",
    "list",
    "create",
    "update",
    "put",
    "delete",
    "end",
    "register",
    "login",
    "logout",
    "refresh",
    "revoke",
    "verify",
    "confirm",
    "resend",
    "request",
    "reset",
}
LOWER_CAMEL = re.compile(r"^[a-z]+(?:[A-Z][a-z0-9]*)*$")
PUBLIC = {
    "getHealth",
    "getReadiness",
    "register",
    "login",
    "refresh",
    "verifyEmail",
    "requestPasswordReset",
    "resetPassword",
    "verifyMfa",
}
SIGNED_IN = [{"BearerToken": []}, {"OAuth2Password": []}]
PROBLEM = "application/problem+json"


def test_every_operation_has_a_unique_short_lower_camel_verb_id(document: dict[str, Any]) -> None:
    ids = [
        operation.get("operationId", f"<none on {method} {path}>")
        for method, path, operation in operations(document)
    ]
    assert len(ids) == len(set(ids)), sorted(ids)
    for operation_id in ids:
        assert LOWER_CAMEL.match(operation_id), f"{operation_id}: set operation_id='verbNoun' on the route"
        verb = re.split(r"(?=[A-Z])", operation_id)[0]
        assert verb in VERBS, f"{operation_id} does not start with a verb of {sorted(VERBS)}"
    assert {"login", "listTasks", "createScan", "getUser", "putUser", "updateUser"} <= set(ids)


def test_every_response_header_has_a_schema(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            for name, header in response.get("headers", {}).items():
                assert "schema" in header, f"{method} {path} {status}: header {name} has no schema"
    listed = document["paths"]["/api/{user_id}/tasks"]["get"]["responses"]["200"]["headers"]
    assert listed["X-Total-Count"]["schema"]["type"] == "integer"
    assert listed["Link"]["schema"] == {"type": "string"}


def test_every_documented_error_is_problem_json(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                content = response.get("content", {})
                assert list(content) == [PROBLEM], f"{method} {path} {status}: {list(content)}"
                assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
    for path, method in [("/api/scans/{scan_id}", "get"), ("/api/users/{user_id}", "delete")]:
        assert "400" in document["paths"][path][method]["responses"]


def test_every_operation_says_who_may_call_it(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        operation_id = operation["operationId"]
        assert "security" in operation, f"{method} {path}: security=BEARER_SECURITY or PublicOperation"
        if operation_id in PUBLIC:
            assert operation["security"] == [], operation_id
        elif operation_id == "getMetrics":
            assert operation["security"] == [{}, {"MetricsToken": []}]
        else:
            assert operation["security"] == SIGNED_IN, operation_id


def test_tags_are_declared_once_in_one_casing_with_descriptions(document: dict[str, Any]) -> None:
    declared = [tag["name"] for tag in document["tags"]]
    assert len(declared) == len(set(declared))
    for tag in document["tags"]:
        assert tag["name"] == tag["name"].lower(), tag
        assert tag["description"], tag
    used = set()
    for method, path, operation in operations(document):
        assert len(operation["tags"]) == 1, f"{method} {path}"
        assert operation["tags"][0] in declared, f"{method} {path}"
        used.add(operation["tags"][0])
    assert used == set(declared)


def test_no_field_is_a_union_of_one(document: dict[str, Any]) -> None:
    # What `T | UnsetType` became: Redocly warns, and generators wrap the field in a union.
    for name, schema in document["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            variants = prop.get("oneOf", [])
            assert len(variants) != 1 or "$ref" in variants[0], f"{name}.{field}: {prop}"


def test_swagger_ui_can_log_in_with_the_password_flow(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["BearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["BearerToken"]["description"],
    }
    flow = schemes["OAuth2Password"]["flows"]["password"]
    assert flow["tokenUrl"] == LOGIN_PATH
    assert "post" in document["paths"][LOGIN_PATH]


def test_login_has_one_body_whose_password_is_required(document: dict[str, Any]) -> None:
    body = document["paths"][LOGIN_PATH]["post"]["requestBody"]
    assert body["required"] is True
    assert list(body["content"]) == ["application/x-www-form-urlencoded"]
    schema = body["content"]["application/x-www-form-urlencoded"]["schema"]
    assert {"username", "password"} <= set(schema["required"])
    assert not {"anyOf", "oneOf", "allOf"} & set(schema)
    assert "JSON" in body["description"]


def test_swagger_ui_examples_show_the_default_behaviour(document: dict[str, Any]) -> None:
    force_llm = document["components"]["schemas"]["ScanForm"]["properties"]["force_llm"]
    assert force_llm["examples"] == ["false"]


async def test_what_swagger_ui_authorize_sends_logs_in(client: httpx.AsyncClient) -> None:
    email, password = f"swagger-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery staple"
    registered = await client.post("/api/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 201
    # Swagger UI 5's password flow, client credentials "Authorization header" (its default), both empty.
    answer = await client.post(
        LOGIN_PATH,
        headers={
            "Accept": "application/json, text/plain, */*",
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Requested-With": "XMLHttpRequest",
            "Authorization": "Basic Og==",
        },
        content=urlencode({"grant_type": "password", "scope": "", "username": email, "password": password}),
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["token_type"] == "bearer"
    # Swagger UI then sends the access token as a bearer token on every operation.
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == email


async def test_the_served_document_is_the_printed_one(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    served = (await client.get("/openapi.json")).json()
    assert [op["operationId"] for _, _, op in operations(served)] == [
        op["operationId"] for _, _, op in operations(document)
    ]
    assert served["components"]["securitySchemes"] == document["components"]["securitySchemes"]


async def test_redoc_loads_no_logo_from_a_cdn(client: httpx.AsyncClient) -> None:
    # The vendored bundle is patched (docs/operations.md); scripts/check_docs_offline.py checks
    # the browser console of both pages for CSP violations.
    bundle = await client.get("/static/redoc/redoc.standalone.js")
    assert bundle.status_code == 200
    assert "cdn.redoc.ly" not in bundle.text
