"""`service dev-mail`: an SMTP server on loopback that prints every mail it receives (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import sys
import time
from email.message import EmailMessage
from typing import Any, TextIO

from aiosmtpd.controller import Controller


def readable(raw: bytes) -> str:
    """The headers that matter and the plain-text part (links included)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if body is not None else ""
    return f"From: {message['From']}\nTo: {message['To']}\nSubject: {message['Subject']}\n\n{text}"


class PrintingHandler:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.out.write(
            f"----- mail received {time.strftime('%H:%M:%S')} -----\n{readable(envelope.content)}\n"
        )
        self.out.flush()
        return "250 OK"


def serve_forever(port: int) -> None:
    controller = Controller(PrintingHandler(sys.stdout), hostname="127.0.0.1", port=port)
    controller.start()
    print(
        f"dev-mail: SMTP on 127.0.0.1:{port}; set SMTP_URL=smtp://127.0.0.1:{port} (Ctrl-C stops)", flush=True
    )
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()
