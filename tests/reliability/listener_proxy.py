"""A TCP proxy on loopback between the caller listener and PostgreSQL, which a test can freeze or cut.

`freeze_after_next_answer()` lets the next chunk the server sends through (a heartbeat's answer)
and then holds everything the server sends on that connection: the heartbeat after it is in
flight for as long as the test wants. `cut()` closes every connection open at the time, as a
database restart or a network cut would. Connections opened later pass freely.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit


class _Link:
    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client = client
        self.server = server
        self.freeze_armed = False
        self.frozen = asyncio.Event()

    def close(self) -> None:
        for writer in (self.client, self.server):
            with contextlib.suppress(Exception):
                writer.transport.abort()


class ListenerProxy:
    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        self.database_url = database_url
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.links: list[_Link] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """DATABASE_URL with the proxy's address in place of the server's."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self.database_url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def __aenter__(self) -> ListenerProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for link in self.links:
            link.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def freeze_after_next_answer(self) -> None:
        """Arm every open connection, and return once one has passed an answer and frozen."""
        live = [link for link in self.links if not link.client.is_closing()]
        assert live, "no connection through the proxy"
        for link in live:
            link.freeze_armed = True
        await asyncio.wait([asyncio.create_task(link.frozen.wait()) for link in live])

    def cut(self) -> None:
        for link in self.links:
            link.close()

    async def _accept(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        server_reader, server = await asyncio.open_connection(*self.upstream)
        link = _Link(client, server)
        self.links.append(link)
        for task in (
            asyncio.create_task(self._pump(client_reader, server, None)),
            asyncio.create_task(self._pump(server_reader, client, link)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link | None) -> None:
        """Copy bytes; `link` given: the server's side, which freezes when armed."""
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if link is not None and link.frozen.is_set():
                    continue  # held: never delivered
                writer.write(data)
                await writer.drain()
                if link is not None and link.freeze_armed:
                    link.frozen.set()
        with contextlib.suppress(Exception):
            writer.transport.abort()
