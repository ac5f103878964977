"""The account mails: a plain-text and an HTML body each, with links into the frontend."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from service.mail.models import Mail
from service.settings import Settings


def _link(settings: Settings, page: str, token: str) -> str:
    return f"{settings.mail_links_base}/{page}?token={quote(token)}"


def _html(paragraphs: list[str], link: str | None = None, label: str = "") -> str:
    parts = [f"<p>{escape(text)}</p>" for text in paragraphs]
    if link is not None:
        parts.insert(1, f'<p><a href="{escape(link)}">{escape(label)}</a></p>')
    return "<!doctype html><html><body>" + "".join(parts) + "</body></html>"


def verification_mail(settings: Settings, email: str, token: str) -> Mail:
    link = _link(settings, "verify-email", token)
    lines = [
        "Please confirm that this is your email address by opening this link:",
        "The link works once, for 24 hours. If you did not create an account, ignore this mail.",
    ]
    return Mail(
        kind="verify_email",
        recipient=email,
        subject="Confirm your email address",
        text=f"{lines[0]}\n\n{link}\n\n{lines[1]}\n",
        html=_html(lines, link, "Confirm my email address"),
    )


def reset_mail(settings: Settings, email: str, token: str) -> Mail:
    link = _link(settings, "reset-password", token)
    lines = [
        "Someone asked to reset the password of your account. To choose a new password, open this link:",
        "The link works once, for one hour. If it was not you, ignore this mail: "
        "your password stays as it is.",
    ]
    return Mail(
        kind="reset_password",
        recipient=email,
        subject="Reset your password",
        text=f"{lines[0]}\n\n{link}\n\n{lines[1]}\n",
        html=_html(lines, link, "Choose a new password"),
    )


def password_changed_mail(email: str) -> Mail:
    lines = [
        "The password of your account was just changed, and every session of it was ended.",
        "If this was not you, reset your password at once and contact us.",
    ]
    return Mail(
        kind="password_changed",
        recipient=email,
        subject="Your password was changed",
        text="\n\n".join(lines) + "\n",
        html=_html(lines),
    )


def two_factor_disabled_mail(email: str) -> Mail:
    lines = [
        "Two-factor sign-in was just turned off for your account: a password alone now signs in.",
        "If this was not you, reset your password at once, turn two-factor sign-in on again and contact us.",
    ]
    return Mail(
        kind="two_factor_disabled",
        recipient=email,
        subject="Two-factor sign-in was turned off",
        text="\n\n".join(lines) + "\n",
        html=_html(lines),
    )


def email_change_mail(settings: Settings, new_email: str, token: str) -> Mail:
    link = _link(settings, "verify-email", token)
    lines = [
        "Please confirm that your account should use this email address from now on by opening this link:",
        "The link works once, for 24 hours. Until then the account keeps its old address. "
        "If you did not ask for this, ignore this mail.",
    ]
    return Mail(
        kind="change_email",
        recipient=new_email,
        subject="Confirm your new email address",
        text=f"{lines[0]}\n\n{link}\n\n{lines[1]}\n",
        html=_html(lines, link, "Confirm my new email address"),
    )


def email_change_notice(old_email: str, new_email: str) -> Mail:
    lines = [
        f"Someone signed in to your account asked to change its email address to {new_email}.",
        "The change applies only once the new address is confirmed. If this was not you, "
        "change your password at once: that ends every session of the account.",
    ]
    return Mail(
        kind="email_change_notice",
        recipient=old_email,
        subject="A new email address was requested for your account",
        text="\n\n".join(lines) + "\n",
        html=_html(lines),
    )
