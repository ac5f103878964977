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

import httpx
import pytest
import schemathesis
from schemathesis.engine import Status, StopReason, events

from service.security.tokens import issue_access_token
from tests.conftest import make_settings
from tests.reliability.conftest import demo_ai_process, live_service, sign_up
from tests.reliability.routes import Operation, documented_operations

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
