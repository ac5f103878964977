"""/api/auth: register, log in, refresh, log out, and the caller's own account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, RequestBody, Schema
from litestar.params import JSONBody

from service.accounts import cookies, credentials, own_data
from service.accounts.models import (
    AccountExport,
    DeleteMeRequest,
    LoginForm,
    LoginJSON,
    LogoutRequest,
    Me,
    RefreshRequest,
    RegisterRequest,
    UpdateMeRequest,
)
from service.http.conditional import (
    ETAG_HEADER,
    NOT_MODIFIED_RESPONSE,
    ConditionalGet,
    IfMatch,
    required_versions,
    row_tag,
    with_tag,
)
from service.http.errors import (
    TooManyRequests,
    UnsupportedMediaType,
    invalid_body,
    invalid_field,
    require_json_body,
)
from service.http.forms import read_form
from service.http.openapi import BEARER_SECURITY, PublicOperation, problem_responses
from service.observability.audit import RequestOrigin
from service.observability.metrics import record_login
from service.security.auth import CALLER_DEPENDENCY, MFA_EXEMPT, Caller
from service.security.caller_listener import CALLER_LISTENER_KEY
from service.security.guards import access, requires_user
from service.sessions import refresh_tokens
from service.sessions.models import Token
from service.two_factor.models import MfaChallenge
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
    password. The form is the contract's, the scan quick start's and what Swagger UI's Authorize sends."""

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


@dataclass
class _OptionalBodyOperation(Operation):
    """Litestar marks a JSON body required even when the handler defaults it to None, and
    documents a JSON `null` for a 204 that returns a Response (to set a cookie)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False
        no_content = (self.responses or {}).get("204")
        if isinstance(no_content, OpenAPIResponse):
            no_content.content = None


@dataclass
class _PublicOptionalBodyOperation(_OptionalBodyOperation):
    """Refresh: an optional body, and anyone may call it (`security: []`, as PublicOperation)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.security = []


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
        responses=problem_responses(400, 401, 403, 413, 415),
    )
    async def login(self, request: Request[Any, Any, Any], state: State) -> Response[Token | MfaChallenge]:
        """An access token and a refresh token (with AUTH_COOKIES=on, the refresh token also as an
        HttpOnly cookie). After LOGIN_MAX_FAILURES consecutive failures the email is locked for
        LOGIN_LOCKOUT_MINUTES: 429 with Retry-After, whether or not it exists. With
        REQUIRE_EMAIL_VERIFICATION=true, an account whose address is not verified gets 403. With
        AUTH_COOKIES=on, a login whose Origin (or Referer) is not in CORS_ORIGINS is 403 (login CSRF).
        With two-factor sign-in on, `{"mfa_required": true, "mfa_token": ...}` and no tokens: send
        the token with a code to POST /api/auth/2fa/verify."""
        cookies.check_login_origin(state.settings, request)
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
        if isinstance(token, MfaChallenge):
            return Response(token, headers={"Cache-Control": "no-store"})
        record_login("success")
        response = await cookies.token_response(state.pool, state.settings, request, token)
        return cast("Response[Token | MfaChallenge]", response)

    @post(
        "/refresh",
        operation_id="refresh",
        summary="Exchange a refresh token for a new pair",
        status_code=200,
        operation_class=_PublicOptionalBodyOperation,
        before_request=require_json_body,
        responses=problem_responses(400, 401, 403, 413, 415),
    )
    async def refresh(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[RefreshRequest | None] = None
    ) -> Response[Token]:
        """The presented refresh token is spent. Presenting a spent one again ends its whole session.
        With AUTH_COOKIES=on and no body, the refresh cookie is the token; such a request is
        accepted only from an Origin (or Referer) in CORS_ORIGINS, else 403."""
        settings = state.settings
        from_cookie = data is None
        presented = (
            cookies.refresh_token_from_cookie(settings, request) if data is None else data.refresh_token
        )
        try:
            token = await refresh_tokens.rotate_session(
                state.pool, settings, presented, RequestOrigin.of(request)
            )
        except NotAuthorizedException as exc:
            if isinstance(exc, refresh_tokens.SessionEnded):
                # As after a logout: this worker refuses the session's access tokens from the
                # moment the 401 leaves (this request carries no Authorization header, so the
                # read-your-writes layer does not hold it by itself).
                await state[CALLER_LISTENER_KEY].caught_up()
            raise cookies.refused_cookie(settings, request, exc) if from_cookie else exc from None
        return await cookies.token_response(state.pool, settings, request, token)

    @post(
        "/logout",
        operation_id="logout",
        summary="End this session",
        status_code=204,
        security=BEARER_SECURITY,
        operation_class=_OptionalBodyOperation,
        before_request=access(requires_user, require_json_body, body_first=True),
        opt={MFA_EXEMPT: True},
        responses=problem_responses(400, 401, 413, 415),
    )
    async def logout(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        data: JSONBody[LogoutRequest | None] = None,
    ) -> Response[None]:
        """This access token and its refresh-token family stop working at once; the body may name
        the session's refresh token as well. With AUTH_COOKIES=on the refresh cookie is cleared."""
        refresh_token = data.refresh_token if data is not None else None
        await refresh_tokens.log_out(
            state.pool, state.settings, caller, refresh_token, RequestOrigin.of(request)
        )
        settings = state.settings
        cleared = [cookies.clearing_cookie(settings, request)] if cookies.cookies_on(settings) else []
        return Response(None, status_code=204, cookies=cleared)

    @get(
        "/me",
        operation_id="getMe",
        summary="The caller",
        security=BEARER_SECURITY,
        before_request=access(requires_user),
        opt={MFA_EXEMPT: True},
        response_headers=[ETAG_HEADER],
        responses={**NOT_MODIFIED_RESPONSE, **problem_responses(401)},
        operation_class=ConditionalGet,
    )
    async def me(
        self, request: Request[Any, Any, Any], state: State, caller: NamedDependency[Caller]
    ) -> Response[Me]:
        me = await credentials.get_me(state.pool, caller.id)
        return with_tag(request, row_tag(me.version), me.user)

    @patch(
        "/me",
        operation_id="updateMe",
        summary="Change the caller's profile or password",
        security=BEARER_SECURITY,
        before_request=access(requires_user, require_json_body, body_first=True),
        opt={MFA_EXEMPT: True},
        response_headers=[ETAG_HEADER],
        responses=problem_responses(400, 401, 409, 412, 413, 415),
    )
    async def update_me(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        data: JSONBody[UpdateMeRequest],
        if_match: IfMatch = None,
    ) -> Response[Me]:
        """A password change needs `current_password`; it ends every other session, and access
        tokens issued before it stop working, including the one used here: refresh to continue.
        With If-Match, only if the account is still at that ETag (else 412, nothing changed)."""
        me = await credentials.update_me(
            state.pool, state.settings, caller, data, RequestOrigin.of(request), required_versions(if_match)
        )
        return Response(me.user, headers={"ETag": row_tag(me.version)})

    @get(
        "/me/export",
        operation_id="getMeExport",
        summary="Everything stored about the caller",
        security=BEARER_SECURITY,
        before_request=access(requires_user),
        responses=problem_responses(401, 403),
    )
    async def export_me(self, state: State, caller: NamedDependency[Caller]) -> Response[AccountExport]:
        """Profile, identities, two-factor state, sessions, tasks, risk scans and the audit events
        about the caller, as one JSON document (a right of access, GDPR article 15). No password
        hash, secret, token or code is ever included."""
        exported = await own_data.export(state.pool, caller)
        return Response(exported, headers={"Cache-Control": "no-store"})

    @delete(
        "/me",
        operation_id="deleteMe",
        summary="Delete the caller's account and everything it owns",
        status_code=204,
        security=BEARER_SECURITY,
        operation_class=_OptionalBodyOperation,
        before_request=access(requires_user, require_json_body),
        responses=problem_responses(400, 401, 403, 409, 413, 415, 429),
    )
    async def delete_me(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        data: JSONBody[DeleteMeRequest | None] = None,
    ) -> None:
        """A local account sends `current_password` (counted on the login lockout); an account
        of an identity provider sends a token issued within the last 5 minutes. The account, its
        sessions, tasks, risk scans, identities and two-factor data are deleted at once, and every
        token of it stops working; audit events stay, without the person's email or addresses.
        409 for the last active administrator."""
        password = data.current_password if data is not None else None
        await own_data.delete_me(state.pool, state.settings, caller, password, RequestOrigin.of(request))
