"""Schemathesis against a real `service serve`: every operation of /openapi.json, every phase.

The service answers no generated request with a 5xx, and every answer it gives (status, content
type, headers, body) is one its own OpenAPI document describes. Generation is derandomized, so a
failure here reproduces on every run; the report names the case and a curl line for it.

Checks left out on purpose (see docs/reliability.md): `positive_data_acceptance`, because a
schema cannot describe an opaque cursor, the password policy of the running environment or a
file part without a filename; `negative_data_rejection`, because Litestar's lax conversion
accepts 0/1 for a boolean, which we keep.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
from schemathesis.engine import Status, StopReason, events

from service.security.tokens import issue_access_token
from service.settings import Settings
from tests.conftest import bearer, make_settings, make_user
from tests.reliability.conftest import demo_ai_process, live_service, sign_up
from tests.reliability.routes import Operation, built_app, documented_operations

EXAMPLES_PER_OPERATION = 40
API_OPERATIONS = [operation for operation in documented_operations() if operation.path.startswith("/api/")]
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "allow_header_conformance",
    "unsupported_method",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
)


def _config(user_id: uuid.UUID, scan_id: str) -> schemathesis.Config:
    generation = {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True}
    return schemathesis.Config.from_dict(
        {
            "seed": 9,
            "request-timeout": 30,
            "cache": {"enabled": False},
            "generation": generation,
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": 6},
            },
            # The caller's own ids, so generated requests get past the 403/404 of someone else's.
            "parameters": {"user_id": str(user_id), "scan_id": scan_id},
        }
    )


def _failures(event: events.EngineEvent) -> list[str]:
    if isinstance(event, events.NonFatalError | events.FatalError):
        return [f"error: {event}"]
    if not isinstance(event, events.ScenarioFinished) or event.status != Status.FAILURE:
        return []
    found = []
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.status == Status.FAILURE and check.failure_info is not None:
                failure = check.failure_info.failure
                found.append(
                    f"{event.recorder.label}: {check.name}: {failure.title}\n"
                    f"{failure.message}\n{check.failure_info.code_sample}"
                )
    return found


def test_every_operation_answers_as_documented(database_url: str, tmp_path: Path, db: Any) -> None:
    settings = make_settings(database_url, tmp_path)
    with demo_ai_process() as ai_url, live_service(database_url, tmp_path, ai_url) as (_, base):
        with httpx.Client(base_url=base, timeout=30) as http:
            user = sign_up(http)
            scan = http.post("/api/scan", headers=user.headers, files={"text": (None, "A tight budget.")})
            assert scan.status_code == 201, scan.text
            http.post(f"/api/{user.id}/tasks", headers=user.headers, json={"title": "Seeded"})

        schema = schemathesis.openapi.from_url(
            f"{base}/openapi.json", config=_config(user.id, scan.json()["id"])
        )

        # A fresh token for every request: logout and a password change revoke the token they
        # are sent with, which must not sign the rest of the run out.
        @schema.auth(refresh_interval=None, retry_on=[])
        class FreshToken:
            def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
                return issue_access_token(settings, user.id).token

            def set(self, case: schemathesis.Case, token: str, context: schemathesis.AuthContext) -> None:
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

        failures: list[str] = []
        finished = None
        for event in schemathesis.engine.from_schema(schema).execute():
            failures += _failures(event)
            if isinstance(event, events.EngineFinished):
                finished = event

    assert not failures, "\n\n".join(failures)
    assert finished is not None
    assert finished.stop_reason == StopReason.COMPLETED
    assert not finished.failures


def _documented(operation: Operation) -> set[int]:
    return {int(status) for status in operation.responses}


@pytest.mark.parametrize("operation", API_OPERATIONS, ids=[repr(operation) for operation in API_OPERATIONS])
def test_every_operation_documents_the_refusals_it_can_give(operation: Operation) -> None:
    """The answers no fuzzer provokes on a healthy server are documented too: every /api route
    needs the database (503 when it is down, as is an identity provider a token needs)."""
    expected = {503}
    if operation.secured:
        expected.add(401)
    if operation.body_types:
        expected |= {400, 413, 415}
    if operation.query or "{" in operation.path:
        expected.add(400)
    if "{user_id}" in operation.path:
        expected.add(403)
    if "}" in operation.path.rsplit("/", 1)[-1]:
        expected.add(404)
    assert expected <= _documented(operation), f"undocumented: {sorted(expected - _documented(operation))}"


def _resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The object schema itself, also when a body may be left out (`oneOf: [$ref, null]`)."""
    references = [variant for variant in schema.get("oneOf", [schema]) if "$ref" in variant]
    if references:
        resolved: dict[str, Any] = document["components"]["schemas"][references[0]["$ref"].rsplit("/", 1)[-1]]
        return resolved
    return schema


def _allows_null(schema: dict[str, Any]) -> bool:
    variants = schema.get("oneOf", []) + schema.get("anyOf", [])
    return schema.get("type") == "null" or any(variant.get("type") == "null" for variant in variants)


def test_request_bodies_are_documented_as_strictly_as_they_are_read() -> None:
    """Findings of the fuzzer's positive-data check, kept fixed without running that check."""
    document = built_app().openapi_schema.to_schema()
    for path, item in document["paths"].items():
        for method, spec in item.items():
            for media_type, content in spec.get("requestBody", {}).get("content", {}).items():
                schema = _resolved(document, content["schema"])
                where = (method, path, media_type)
                assert schema.get("additionalProperties") is False, ("unknown fields are refused", where)
                if media_type != "application/json":
                    nullable = [name for name, field in schema["properties"].items() if _allows_null(field)]
                    assert not nullable, ("a form field is absent or a string, never null", where)
            for parameter in spec.get("parameters", []):
                maximum = parameter["schema"].get("maximum")
                if parameter["schema"].get("type") == "integer" and maximum is not None:
                    # Python compares int and float exactly: 2.0**63 is above the bigint maximum.
                    assert maximum <= 2**63 - 1, (method, path, parameter["name"])
    login = document["paths"]["/api/auth/login"]["post"]["requestBody"]["content"]
    assert set(login["application/x-www-form-urlencoded"]["schema"]["required"]) == {"username", "password"}


async def test_options_lists_every_method_of_a_path(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
) -> None:
    user_id = await make_user(db)
    for path, methods in (
        ("/api/auth/me", "DELETE, GET, OPTIONS, PATCH"),
        (f"/api/v1/{user_id}/tasks", "GET, OPTIONS, POST"),
        (f"/api/{user_id}/tasks/1", "DELETE, GET, OPTIONS, PATCH"),
    ):
        response = await client.options(path, headers=bearer(settings, user_id))
        assert response.status_code == 204, (path, response.text)
        assert response.headers["allow"] == methods, path
