"""/api/auth/2fa: turn two-factor sign-in on and off, backup codes, and a login's second step."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.params import JSONBody

from service.accounts import cookies
from service.http.errors import TooManyRequests, require_json_body
from service.http.openapi import BEARER_SECURITY, PublicOperation, problem_responses
from service.observability.audit import RequestOrigin
from service.observability.metrics import record_login
from service.security.auth import CALLER_DEPENDENCY, MFA_EXEMPT, Caller
from service.security.guards import access, requires_user
from service.sessions.models import Token
from service.two_factor import service
from service.two_factor.models import (
    BackupCodes,
    ConfirmRequest,
    Enrolment,
    EnrolRequest,
    ReauthenticateRequest,
    VerifyRequest,
)

_EXEMPT = {MFA_EXEMPT: True}  # reachable by an admin that REQUIRE_MFA_FOR_ADMINS holds back


class TwoFactorController(Controller):
    path = "/auth/2fa"
    tags = ["auth"]
    dependencies = CALLER_DEPENDENCY

    @post(
        "/totp",
        operation_id="createTotp",
        summary="Start enrolling an authenticator app",
        status_code=200,
        security=BEARER_SECURITY,
        before_request=access(requires_user, require_json_body),
        opt=_EXEMPT,
        responses=problem_responses(400, 401, 409, 413, 415, 429, 503),
    )
    async def enrol(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        data: JSONBody[EnrolRequest],
    ) -> Response[Enrolment]:
        """A new shared secret for a local account (its password proves the owner; counted on the
        login lockout). Two-factor is not on until POST /api/auth/2fa/totp/confirm; enrolling
        again before that replaces the secret. 409 when two-factor is already on."""
        enrolment = await service.enrol(
            state.pool, state.settings, caller, data.current_password, RequestOrigin.of(request)
        )
        return Response(enrolment, headers={"Cache-Control": "no-store"})

    @post(
        "/totp/confirm",
        operation_id="confirmTotp",
        summary="Turn two-factor sign-in on",
        status_code=200,
        security=BEARER_SECURITY,
        before_request=access(requires_user, require_json_body),
        opt=_EXEMPT,
        responses=problem_responses(400, 401, 409, 413, 415, 429, 503),
    )
    async def confirm(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        data: JSONBody[ConfirmRequest],
    ) -> Response[BackupCodes]:
        """A current code from the app proves it holds the secret: two-factor is on from now, and
        the answer holds 10 single-use backup codes, shown this once. 409 when nothing is being
        enrolled, and when POST /api/auth/2fa/totp replaced the pending secret while this ran
        (the code proved the old one; confirm with a code from the new one)."""
        codes = await service.confirm(
            state.pool, state.settings, caller, data.code, RequestOrigin.of(request)
        )
        return Response(codes, headers={"Cache-Control": "no-store"})

    @delete(
        "/totp",
        operation_id="deleteTotp",
        summary="Turn two-factor sign-in off",
        status_code=204,
        security=BEARER_SECURITY,
        before_request=access(requires_user, require_json_body),
        responses=problem_responses(400, 401, 409, 413, 415, 429, 503),
    )
    async def disable(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        data: JSONBody[ReauthenticateRequest],
    ) -> None:
        """With `current_password` or a `code` (authenticator or backup): the authenticator and its
        backup codes are deleted. 409 when two-factor is not on."""
        await service.disable(state.pool, state.settings, caller, data, RequestOrigin.of(request))

    @post(
        "/backup-codes",
        operation_id="createBackupCodes",
        summary="Replace the backup codes",
        status_code=200,
        security=BEARER_SECURITY,
        before_request=access(requires_user, require_json_body),
        responses=problem_responses(400, 401, 409, 413, 415, 429, 503),
    )
    async def regenerate(
        self,
        request: Request[Any, Any, Any],
        state: State,
        caller: NamedDependency[Caller],
        data: JSONBody[ReauthenticateRequest],
    ) -> Response[BackupCodes]:
        """With `current_password` or a `code`: 10 new backup codes; the old ones stop working."""
        codes = await service.regenerate_backup_codes(
            state.pool, state.settings, caller, data, RequestOrigin.of(request)
        )
        return Response(codes, headers={"Cache-Control": "no-store"})

    @post(
        "/verify",
        operation_id="verifyMfa",
        summary="Finish a login with a two-factor code",
        status_code=200,
        operation_class=PublicOperation,
        before_request=require_json_body,
        responses=problem_responses(400, 401, 413, 415, 429, 503),
    )
    async def verify(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[VerifyRequest]
    ) -> Response[Token]:
        """The login's `mfa_token` (5 minutes, single use) and a code from the app or a backup
        code -> the token pair, as a login without two-factor answers (and the refresh cookie
        with AUTH_COOKIES=on). Each code is accepted once; wrong codes count on the account's
        login lockout (429 with Retry-After once locked)."""
        try:
            token = await service.verify(
                state.pool, state.settings, data.mfa_token, data.code, RequestOrigin.of(request)
            )
        except TooManyRequests:
            record_login("locked_out")
            raise
        except NotAuthorizedException:
            record_login("failure")
            raise
        record_login("success")
        return await cookies.token_response(state.pool, state.settings, request, token)
