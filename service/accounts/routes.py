"""/api/auth: register, log in, refresh, log out, and the caller's own account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException
from litestar.openapi.spec import OpenAPIMediaType, RequestBody, Schema
from litestar.params import JSONBody

from service.accounts import credentials, sessions
from service.accounts.models import (
    LoginForm,
    LoginJSON,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    Token,
    UpdateMeRequest,
)
from service.audit.events import RequestOrigin
from service.errors import (
    TooManyRequests,
    UnsupportedMediaType,
    invalid_body,
    invalid_field,
    problem_responses,
    require_json_body,
)
from service.forms import read_form
from service.metrics import record_login
from service.openapi import PublicOperation
from service.security.auth import BEARER_SECURITY, CALLER_DEPENDENCY, Caller
from service.users.models import User

_FORM_TYPES = {RequestEncodingType.URL_ENCODED.value, RequestEncodingType.MULTI_PART.value}
_JSON_TYPE = RequestEncodingType.JSON.value


async def _login_credentials(request: Request[Any, Any, Any]) -> tuple[str, str]:
    """(login name, password) from an OAuth2 password form or a JSON body, by Content-Type."""
    media_type = request.content_type[0]
    if media_type in _FORM_TYPES:
        form = await read_form(request)
        try:
            login = msgspec.convert(dict(form.items()), LoginForm, strict=True)
        except msgspec.ValidationError as exc:
            raise invalid_body(exc) from None
        return login.username, login.password
    if media_type == _JSON_TYPE or media_type.endswith("+json"):
        try:
            body = msgspec.json.decode(await request.body(), type=LoginJSON)
        except msgspec.DecodeError as exc:
            raise invalid_body(exc) from None
        name = body.email if body.email is not None else body.username
        if name is None:
            raise invalid_field("email", "Object missing required field `email`")
        return name, body.password
    raise UnsupportedMediaType(
        "send credentials as application/x-www-form-urlencoded (username, password) or application/json"
    )


def _inline_schema(struct: type[msgspec.Struct]) -> Schema:
    _, components = msgspec.json.schema_components([struct])
    schema = components[struct.__name__]
    # Generators name an inline body after its operation plus its title (LoginLoginForm); with
    # no title it is LoginBody.
    del schema["title"]
    # The spec objects serialise plain JSON Schema dicts as they are.
    return cast(Schema, schema)


@dataclass
class _LoginOperation(PublicOperation):
    """The login handler reads its body itself, by Content-Type. Only the form is described:
    openapi-python-client cannot generate an operation with two body types (the module it writes
    fails to import), and a schema for 'email or username' (anyOf) made generators drop the
    password. The form is the contract's, seed 004's and what Swagger UI's Authorize sends."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = RequestBody(
            required=True,
            description=(
                "The OAuth2 password grant form (RFC 6749 section 4.3): your email as `username`. "
                'The same route takes JSON: `{"email": ..., "password": ...}` (or `username` for `email`).'
            ),
            content={
                RequestEncodingType.URL_ENCODED.value: OpenAPIMediaType(schema=_inline_schema(LoginForm))
            },
        )


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]
    dependencies = CALLER_DEPENDENCY

    @post(
        "/register",
        operation_id="register",
        operation_class=PublicOperation,
        summary="Create a local account",
        status_code=201,
        before_request=require_json_body,
        responses=problem_responses(400, 409, 413, 415),
    )
    async def register(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[RegisterRequest]
    ) -> User:
        """The new user; the email is stored lowercased. 409 when a local account already has it."""
        return await credentials.register(state.pool, state.settings, data, RequestOrigin.of(request))

    @post(
        "/login",
        operation_id="login",
        summary="Log in with email and password",
        status_code=200,
        operation_class=_LoginOperation,
        responses=problem_responses(400, 401, 413, 415),
    )
    async def login(self, request: Request[Any, Any, Any], state: State) -> Token:
        """An access token and a refresh token. After LOGIN_MAX_FAILURES consecutive failures the
        email is locked for LOGIN_LOCKOUT_MINUTES: 429 with Retry-After, whether or not it exists."""
        login_name, password = await _login_credentials(request)
        try:
            token = await credentials.log_in(
                state.pool, state.settings, login_name, password, RequestOrigin.of(request)
            )
        except TooManyRequests:
            record_login("locked_out")
            raise
        except NotAuthorizedException:
            record_login("failure")
            raise
        record_login("success")
        return token

    @post(
        "/refresh",
        operation_id="refresh",
        operation_class=PublicOperation,
        summary="Exchange a refresh token for a new pair",
        status_code=200,
        before_request=require_json_body,
        responses=problem_responses(400, 401, 413, 415),
    )
    async def refresh(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[RefreshRequest]
    ) -> Token:
        """The presented refresh token is spent. Presenting a spent one again ends its whole session."""
        return await sessions.rotate_session(
            state.pool, state.settings, data.refresh_token, RequestOrigin.of(request)
        )

    @post(
        "/logout",
        operation_id="logout",
        summary="End this session",
        status_code=204,
        security=BEARER_SECURITY,
        before_request=require_json_body,
        responses=problem_responses(400, 401, 413, 415),
    )
    async def logout(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        data: JSONBody[LogoutRequest | None] = None,
    ) -> None:
        """This access token and its refresh-token family stop working at once; the body may name
        the session's refresh token as well."""
        refresh_token = data.refresh_token if data is not None else None
        await sessions.end_session(state.pool, caller, refresh_token, RequestOrigin.of(request))

    @get(
        "/me",
        operation_id="getMe",
        summary="The caller",
        security=BEARER_SECURITY,
        responses=problem_responses(401),
    )
    async def me(self, state: State, caller: NamedDependency[Caller]) -> User:
        return await credentials.get_user(state.pool, caller.id)

    @patch(
        "/me",
        operation_id="updateMe",
        summary="Change the caller's profile or password",
        security=BEARER_SECURITY,
        before_request=require_json_body,
        responses=problem_responses(400, 401, 409, 413, 415),
    )
    async def update_me(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        data: JSONBody[UpdateMeRequest],
    ) -> User:
        """A password change needs `current_password`; it ends every other session, and access
        tokens issued before it stop working, including the one used here: refresh to continue."""
        return await credentials.update_me(
            state.pool, state.settings, caller, data, RequestOrigin.of(request)
        )
