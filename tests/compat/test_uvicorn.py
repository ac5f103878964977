"""uvicorn's httptools protocol still has the callbacks and attributes service/http/protocol.py
builds its request-head limits on (service/compat/uvicorn.py)."""

from __future__ import annotations

import asyncio
import socket

from uvicorn.config import Config
from uvicorn.server import ServerState

from service.compat.uvicorn import HttpToolsProtocol
from service.http.protocol import GuardedHttpToolsProtocol

OVERRIDDEN = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
)


def test_the_callbacks_the_guard_overrides_are_still_uvicorns() -> None:
    for name in OVERRIDDEN:
        assert callable(getattr(HttpToolsProtocol, name, None)), name
        assert getattr(GuardedHttpToolsProtocol, name) is not getattr(HttpToolsProtocol, name), name


async def test_a_connected_protocol_has_the_attributes_the_guard_reads() -> None:
    loop = asyncio.get_running_loop()
    config = Config(app=lambda scope, receive, send: None, http="httptools", log_config=None)
    config.load()
    protocol = HttpToolsProtocol(config, ServerState(), {}, loop)
    assert protocol.loop is loop
    ours, theirs = socket.socketpair()
    try:
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, ours)
        assert protocol.transport is transport
        assert protocol in protocol.connections
        transport.close()
        await asyncio.sleep(0)
        assert protocol not in protocol.connections
    finally:
        theirs.close()
