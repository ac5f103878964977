"""The OpenAPI document's shared parts: security schemes, tags, public operations, typed headers,
the problem+json answers of each route (`problem_responses`), and schemas that say what the
service really accepts.

Conventions every route follows (tests/openapi/test_document.py checks them): an explicit
`operation_id="verbNoun"` (lowerCamel, unique) on the decorator, a tag from TAGS, either
`security=BEARER_SECURITY` or `operation_class=PublicOperation`, and only problem+json errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OAuthFlow, OAuthFlows, Operation, Reference, Schema, SecurityScheme, Tag
from litestar.typing import FieldDefinition

# Litestar's own Struct plugin, extended rather than re-implemented (service/compat/litestar.py);
# tests/compat and tests/reliability check it, so a Litestar upgrade that moves it fails loudly.
from service.compat.litestar import StructSchemaPlugin
from service.http.errors import PROBLEM_JSON, Problem

if TYPE_CHECKING:
    from service.compat.litestar import SchemaCreator

LOGIN_PATH = "/api/auth/login"
BEARER_SCHEME = "BearerToken"
PASSWORD_SCHEME = "OAuth2Password"  # noqa: S105 - a scheme name, not a secret
METRICS_SCHEME = "MetricsToken"
# What a protected route declares: either scheme ends in the same bearer token; Swagger UI offers
# the password flow as a login form.
BEARER_SECURITY: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}, {PASSWORD_SCHEME: []}]

SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    BEARER_SCHEME: SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description="An access token from /api/auth/login, Supabase Auth or Better Auth.",
    ),
    PASSWORD_SCHEME: SecurityScheme(
        type="oauth2",
        description=(
            "Log in from Swagger UI's Authorize: your email as `username`, your password; "
            "client id and secret stay empty. The access token is then sent as a bearer token."
        ),
        flows=OAuthFlows(password=OAuthFlow(token_url=LOGIN_PATH, scopes={})),
    ),
    METRICS_SCHEME: SecurityScheme(
        type="http",
        scheme="bearer",
        description="METRICS_TOKEN, when the operator set one.",
    ),
}

TAGS = [
    Tag(name="auth", description="Local accounts: register, log in, refresh, log out, the caller's profile."),
    Tag(name="users", description="User administration: admins for everyone, users for themselves."),
    Tag(name="tasks", description="TaskFlow's tasks, each user's own."),
    Tag(name="scans", description="Risk scans: submit a file or text; read and delete saved scans."),
    Tag(name="audit", description="Security and administration events, for administrators."),
    Tag(name="mail", description="The outbox of mails (verification, password reset), for administrators."),
    Tag(name="operations", description="Liveness, readiness and Prometheus metrics."),
]


@dataclass
class PublicOperation(Operation):
    """An operation anyone may call. Litestar drops an empty `security` list, and an operation
    without one reads as 'unspecified' to linters and generators: `[]` says 'no credentials'."""

    def __post_init__(self) -> None:
        self.security = []


@dataclass(eq=False)  # keeps ResponseHeader's hash by name: Litestar collects headers in a frozenset
class DocumentedHeader(ResponseHeader):
    """A response header the handler sets itself, with the schema OpenAPI 3.1 requires of every
    header (Litestar derives one only from a fixed `value`)."""

    documentation_only: bool = True
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """A request Struct with `forbid_unknown_fields=True` answers 400 to any other key; Litestar
    documents every Struct as an open object, so clients and fuzzers were told extra keys are fine."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields:
            schema.additional_properties = False
        if schema.properties:
            schema.properties = {name: _without_lone_one_of(prop) for name, prop in schema.properties.items()}
        return schema


def _without_lone_one_of(prop: Schema | Reference) -> Schema | Reference:
    """A field typed `T | UnsetType` is documented as `oneOf: [T]`, which linters flag and
    generators wrap in needless unions: say T itself, with the field's own keywords."""
    if not isinstance(prop, Schema) or prop.one_of is None or len(prop.one_of) != 1:
        return prop
    (variant,) = prop.one_of
    if not isinstance(variant, Schema):
        return prop
    own = {item.name: getattr(prop, item.name) for item in fields(prop) if item.name != "one_of"}
    return replace(variant, **{name: value for name, value in own.items() if value is not None})


_RESPONSE_DESCRIPTIONS = {
    400: "Invalid input",
    401: "Missing or invalid credentials",
    403: "Authenticated but not allowed",
    404: "Absent, or not yours",
    409: "Conflict with the current state",
    412: "The resource changed since the ETag sent in If-Match; nothing was changed",
    413: "Body too large",
    415: "Unsupported media type",
    429: "Rate limited; see Retry-After",
    502: "An upstream service answered badly",
    503: "A dependency is unavailable; see Retry-After",
}


# Every /api route is rate limited and needs the database.
API_STATUSES = (429, 503)


def problem_responses(*statuses: int, api: bool = True) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem+json answers a route can give (with `api`, also 429 and 503)."""
    if api:
        statuses = tuple(sorted({*statuses, *API_STATUSES}))
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_RESPONSE_DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in statuses
    }
