"""/api/auth: email verification and password reset (the links in the mails lead a frontend here)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody

from service.accounts import recovery, verification
from service.accounts.recovery_models import (
    Accepted,
    ForgotPasswordRequest,
    ResetPasswordRequest,
    VerifyEmailRequest,
)
from service.http.errors import require_json_body
from service.http.openapi import BEARER_SECURITY, PublicOperation, problem_responses
from service.observability.audit import RequestOrigin
from service.security.auth import CALLER_DEPENDENCY, Caller
from service.security.guards import access, requires_user
from service.users.models import User

RESET_ACCEPTED = "if an account has this email, a link to reset its password is on its way"


class AccountRecoveryController(Controller):
    path = "/auth"
    tags = ["auth"]
    dependencies = CALLER_DEPENDENCY

    @post(
        "/verify-email",
        operation_id="verifyEmail",
        operation_class=PublicOperation,
        summary="Prove an email address with the token from the verification mail",
        status_code=200,
        before_request=require_json_body,
        responses=problem_responses(400, 409, 413, 415),
    )
    async def verify_email(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[VerifyEmailRequest]
    ) -> User:
        """The account, now with `email_verified: true` (for a link sent after an email change, also
        with its new `email`). A used, expired or unknown token: 400; a new address another account
        took meanwhile: 409."""
        return await verification.verify_email(state.pool, data.token, RequestOrigin.of(request))

    @post(
        "/verify-email/resend",
        operation_id="resendVerificationEmail",
        summary="Mail a new verification link to the caller",
        status_code=202,
        security=BEARER_SECURITY,
        before_request=access(requires_user),
        responses=problem_responses(400, 401),
    )
    async def resend(
        self, request: Request[Any, Any, Any], state: State, caller: NamedDependency[Caller]
    ) -> Accepted:
        """202 and a new link by mail; nothing is sent when the address is verified already.
        A few mails an hour per address, then 429 with Retry-After."""
        await verification.resend_verification(state.pool, state.settings, caller, RequestOrigin.of(request))
        return Accepted(
            detail="a new verification link is on its way, unless the address is verified already"
        )

    @post(
        "/forgot-password",
        operation_id="requestPasswordReset",
        operation_class=PublicOperation,
        summary="Mail a password-reset link",
        status_code=202,
        before_request=require_json_body,
        responses=problem_responses(400, 413, 415),
    )
    async def forgot_password(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[ForgotPasswordRequest]
    ) -> Accepted:
        """The same 202, in about the same time, whether or not the address has an account: the
        link (valid one hour, single use) goes by mail to an account that has it. At most a few
        mails an hour per address."""
        await recovery.request_reset(state.pool, data.email, RequestOrigin.of(request))
        return Accepted(detail=RESET_ACCEPTED)

    @post(
        "/reset-password",
        operation_id="resetPassword",
        operation_class=PublicOperation,
        summary="Set a new password with the token from the reset mail",
        status_code=204,
        before_request=require_json_body,
        responses=problem_responses(400, 413, 415),
    )
    async def reset_password(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[ResetPasswordRequest]
    ) -> None:
        """The password policy applies. Every session and access token of the account ends, its
        login lockout is lifted, and a notice goes to its address. A used, expired or unknown
        token: 400 (of concurrent uses of one token, one succeeds)."""
        await recovery.reset_password(
            state.pool, state.settings, data.token, data.password, RequestOrigin.of(request)
        )
