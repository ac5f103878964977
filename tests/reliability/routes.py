"""The app's own route table and OpenAPI document, read at collection time to generate tests."""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.routes import HTTPRoute

from service.app import create_app
from tests.conftest import make_settings

PATH_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")


@functools.cache
def built_app() -> Litestar:
    """An app as `service serve` builds it; nothing connects until its lifespan runs."""
    with tempfile.TemporaryDirectory() as data_dir:
        return create_app(make_settings("postgresql://127.0.0.1:9/unused", Path(data_dir)))


def _needs_credentials(security: list[dict[str, Any]] | None) -> bool:
    """Whether an operation's security requirements all name a scheme: an empty requirement
    `{}` among them (as on /metrics, whose token is optional) admits anonymous callers."""
    return bool(security) and all(security)


def secured_routes() -> list[tuple[str, str]]:
    """(method, path) of every route that needs a token, /api/v1 twins included."""
    found = []
    for route in built_app().routes:
        if isinstance(route, HTTPRoute):
            for method, (handler, _) in route.route_handler_map.items():
                if method not in ("OPTIONS", "HEAD") and _needs_credentials(handler.resolve_security()):
                    found.append((method, route.path))
    return sorted(found)


def path_parameters(path: str) -> list[str]:
    return PATH_PARAMETER.findall(path)


def fill_path(path: str, values: dict[str, str]) -> str:
    return PATH_PARAMETER.sub(lambda match: values[match.group(1)], path)


class Operation:
    """One documented operation: what it takes, read from the OpenAPI document."""

    def __init__(self, method: str, path: str, spec: dict[str, Any]) -> None:
        self.method = method.upper()
        self.path = path
        self.secured = _needs_credentials(spec.get("security"))
        self.body_types = tuple((spec.get("requestBody") or {}).get("content", {}))
        parameters = spec.get("parameters", [])
        self.query = {p["name"]: p.get("schema", {}) for p in parameters if p["in"] == "query"}
        self.responses: dict[str, Any] = spec.get("responses", {})

    @property
    def takes_json(self) -> bool:
        return "application/json" in self.body_types

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"


def documented_operations() -> list[Operation]:
    document = built_app().openapi_schema.to_schema()
    return [
        Operation(method, path, spec)
        for path, item in sorted(document["paths"].items())
        for method, spec in sorted(item.items())
        if method in ("get", "post", "put", "patch", "delete")
    ]
