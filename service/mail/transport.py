"""Sending one message: over SMTP (aiosmtplib), or to the log when SMTP_URL is unset (development)."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from service.settings import Settings

log = logging.getLogger("service.mail")

# What a failed attempt raises: the server refused, the connection failed or timed out.
DELIVERY_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


def build_message(sender: str, recipient: str, subject: str, text: str, html: str) -> EmailMessage:
    """A multipart/alternative message: the plain text first, the HTML as the preferred part."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


class SmtpTransport:
    """smtp://user:pass@host:587 (STARTTLS when the server offers it) or smtps://host:465."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.implicit_tls = parts.scheme == "smtps"
        self.hostname = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.implicit_tls else 587)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.implicit_tls,
            # None: STARTTLS when the server offers it (a submission port, 587, always does).
            start_tls=None if not self.implicit_tls else False,
            timeout=self.timeout,
        )


class LogTransport:
    """Development without SMTP_URL: the mail, links included, goes to the log."""

    async def send(self, message: EmailMessage) -> None:
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        log.warning(
            "mail not sent (SMTP_URL is unset): to %s, subject %r:\n%s",
            message["To"],
            message["Subject"],
            text,
        )


def transport_for(settings: Settings) -> Transport:
    if settings.smtp_url:
        return SmtpTransport(settings.smtp_url, settings.smtp_timeout_seconds)
    return LogTransport()
