"""gzip for large answers, for clients that accept it, never under /api/auth.

Our own layer rather than Litestar's CompressionMiddleware, which (2.25) compresses for
`Accept-Encoding: gzip;q=0` (it looks for the substring), sends `Vary` only on the answers it
compressed, keeps a strong ETag unchanged on a compressed answer (RFC 9110 section 8.8.3: another
encoding is another representation), and compresses at level 9 by default.

- Only textual types (JSON, problem+json, text, JavaScript) of at least MIN_BYTES are compressed:
  below about one packet, fewer bytes save no round trip and the gzip header eats the gain.
- Never under /api/auth (and /api/v1/auth): those answers carry tokens, and a compressed answer that
  also reflects attacker-chosen input leaks secrets through its length (BREACH).
- The ETag of a compressed answer gets COMPRESSED_SUFFIX inside its quotes; service.http.conditional
  treats a tag with that suffix as the same version of the resource.
- Level 1 (GZIP_LEVEL): a 200-task page (62 KB) becomes 5.1 KB in 65 us; level 5 gives 4.7 KB in
  175 us, level 9 4.6 KB in 623 us, brotli 3.8 KB in 189 us (quality 1) to 3.4 KB in 929 us
  (quality 5): a kilobyte or so less was not worth 3-14 times the CPU on the event loop
  (bench/run.py --only conventions; bench/README.md, "ETags and compression").
"""

from __future__ import annotations

import zlib

from litestar.types import HTTPResponseStartEvent, Message, Send

from service.http.conditional import COMPRESSED_SUFFIX

MIN_BYTES = 1024
GZIP_LEVEL = 1
_GZIP_WBITS = 31  # zlib's gzip container
_NEVER_UNDER = ("/api/auth", "/api/v1/auth")
_TEXTUAL = (b"application/json", b"application/problem+json", b"text/", b"application/javascript")
_VARY = (b"vary", b"Accept-Encoding")


def _accepts_gzip(header: str) -> bool:
    wildcard = False
    for item in header.split(","):
        coding, _, parameters = item.strip().partition(";")
        coding = coding.strip().lower()
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        accepted = True
        for parameter in parameters.split(";"):
            key, _, value = parameter.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    accepted = float(value) > 0
                except ValueError:
                    accepted = False
        if coding == "*":
            wildcard = accepted
        else:
            return accepted
    return wildcard


def _with_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers with Accept-Encoding added to Vary (CORS may have put Origin there)."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            headers[index] = (name, value + b", " + _VARY[1])
            return headers
    headers.append(_VARY)
    return headers


def _tagged_compressed(value: bytes) -> bytes:
    if value.endswith(b'"'):
        return value[:-1] + COMPRESSED_SUFFIX.encode() + b'"'
    return value


class Compression:
    """Applied by the outermost layer (service.http.middleware.RequestContextMiddleware), which
    reads Accept-Encoding in its one pass over the request's headers and, for a client that takes
    gzip, sends through `sender(send)`. A client that does not take gzip gets no Vary either, and
    costs no layer and no `send` wrapper: its answer is `private`, so no shared cache serves it on.
    """

    def __init__(self, *, min_bytes: int = MIN_BYTES, level: int = GZIP_LEVEL) -> None:
        self.min_bytes = min_bytes
        self.level = level

    def applies(self, path: str, accept_encoding: bytes | None) -> bool:
        """Whether to compress the answer to a request for `path` with this Accept-Encoding."""
        return (
            accept_encoding is not None
            and not path.startswith(_NEVER_UNDER)
            and _accepts_gzip(accept_encoding.decode("latin-1"))
        )

    def sender(self, send: Send) -> Send:
        """`send`, compressing what is worth it (the headers are final by then)."""
        return self._sender(send)

    def _sender(self, send: Send) -> Send:
        start: HTTPResponseStartEvent | None = None
        compressor: zlib._Compress | None = None

        async def send_compressed(message: Message) -> None:
            nonlocal start, compressor
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                textual = message["status"] not in (204, 304) and any(
                    name.lower() == b"content-type" and value.startswith(_TEXTUAL) for name, value in headers
                )
                encoded = any(name.lower() == b"content-encoding" for name, _ in headers)
                if not textual or encoded:
                    await send(message)
                    return
                message["headers"] = _with_vary(headers)
                start = message  # held back until the body shows whether it is worth compressing
                return
            if message["type"] != "http.response.body" or (start is None and compressor is None):
                await send(message)
                return
            body: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            if start is not None:
                held, start = start, None
                if not more:  # the whole body in one message, as Litestar sends JSON
                    if len(body) < self.min_bytes:
                        await send(held)
                        await send(message)
                        return
                    compressed = zlib.compress(body, self.level, _GZIP_WBITS)
                    await send(_compressed_start(held, len(compressed)))
                    await send({"type": "http.response.body", "body": compressed, "more_body": False})
                    return
                compressor = zlib.compressobj(self.level, zlib.DEFLATED, _GZIP_WBITS)
                await send(_compressed_start(held, None))
            assert compressor is not None
            chunk = compressor.compress(body)
            if not more:
                chunk += compressor.flush()
            if chunk or not more:
                await send({"type": "http.response.body", "body": chunk, "more_body": more})

        return send_compressed


def _compressed_start(start: HTTPResponseStartEvent, length: int | None) -> HTTPResponseStartEvent:
    headers = []
    for name, value in start["headers"]:
        lower = name.lower()
        if lower == b"content-length":
            continue
        headers.append((name, _tagged_compressed(value) if lower == b"etag" else value))
    headers.append((b"content-encoding", b"gzip"))
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http.response.start", "status": start["status"], "headers": headers}
