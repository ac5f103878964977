"""uvicorn internals: the httptools protocol class (checked with uvicorn 0.54).

uvicorn has no limit on the size of a request head or the time it takes to arrive with httptools,
and caps requests rather than connections (Kludex/uvicorn#157, "Further timeouts and resource
limiting"; the size limit PR Kludex/uvicorn#1684 was closed). service/http/protocol.py subclasses
`HttpToolsProtocol` and relies on its callbacks (`connection_made`, `connection_lost`,
`data_received`, `on_message_begin`, `on_headers_complete`) and attributes (`connections`,
`transport`, `loop`); tests/compat/test_uvicorn.py fails when any of them moves.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HttpToolsProtocol"]
