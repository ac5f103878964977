"""Ending a session ends all of it: after a logout, or after reuse of a spent refresh token is
detected, every access token issued earlier in that session is refused on every host.

Before, only the access token that logged out (and the refresh tokens) ended; tokens issued
earlier in the same session, at the login and at each refresh, kept working until they expired.

Host A is one `service serve` (one worker), host B another with `--workers 2`, on one database.
The host that ended the session refuses its tokens from the moment it answers (read-your-writes);
the other host within the notification latency (PROPAGATION_DEADLINE_SECONDS: a deadline on a
machine shared with other work, not the measurement; docs/auth.md has the figures).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx
import pytest

from tests.accounts.conftest import STRONG_PASSWORD
from tests.processes import ServiceProcess, serve

PROPAGATION_DEADLINE_SECONDS = 1.0
REFRESHES = 3  # so a session has four access tokens: the login's and one per refresh
AGREEING_PROBES = 6
PROBERS_PER_TOKEN = 2
TEST_DEADLINE_SECONDS = 60


@pytest.fixture(scope="module")
def hosts(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    with ExitStack() as stack:
        a = stack.enter_context(serve(database_url, tmp_path_factory.mktemp("end-a")))
        b = stack.enter_context(serve(database_url, tmp_path_factory.mktemp("end-b"), "--workers", "2"))
        yield a, b


@pytest.fixture
async def clients(
    hosts: tuple[ServiceProcess, ServiceProcess],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    a, b = (httpx.AsyncClient(base_url=host.url, timeout=30) for host in hosts)
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()


@dataclass
class Session:
    user_id: str
    email: str
    access_tokens: list[str]
    refresh_token: str
    spent_refresh_tokens: list[str] = field(default_factory=list)


async def _session(a: httpx.AsyncClient, b: httpx.AsyncClient, email: str | None = None) -> Session:
    """Register (unless `email` is given), log in on A, refresh REFRESHES times alternating hosts."""
    if email is None:
        email = f"ender-{uuid.uuid4().hex[:10]}@example.com"
        registered = await a.post("/api/auth/register", json={"email": email, "password": STRONG_PASSWORD})
        assert registered.status_code == 201, registered.text
    login = await a.post("/api/auth/login", data={"username": email, "password": STRONG_PASSWORD})
    assert login.status_code == 200, login.text
    me = await a.get("/api/auth/me", headers=_bearer(login.json()["access_token"]))
    session = Session(me.json()["id"], email, [login.json()["access_token"]], login.json()["refresh_token"])
    for number in range(REFRESHES):
        host = (b, a)[number % 2]
        refreshed = await host.post("/api/auth/refresh", json={"refresh_token": session.refresh_token})
        assert refreshed.status_code == 200, refreshed.text
        session.spent_refresh_tokens.append(session.refresh_token)
        session.access_tokens.append(refreshed.json()["access_token"])
        session.refresh_token = refreshed.json()["refresh_token"]
    return session


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _status(http: httpx.AsyncClient, session: Session, token: str) -> int:
    return (await http.get(f"/api/{session.user_id}/tasks", headers=_bearer(token))).status_code


async def _warm(clients: tuple[httpx.AsyncClient, ...], session: Session) -> None:
    """Every token works on every host (and is in the caller caches of the workers probed)."""
    for http in clients:
        for token in session.access_tokens:
            statuses = [await _status(http, session, token) for _ in range(AGREEING_PROBES)]
            assert statuses == [200] * AGREEING_PROBES


class Probes:
    """Requests with every token of a session on both hosts, in a loop, while the session ends.
    Keeps, for each answer, when its request was sent."""

    def __init__(self, clients: tuple[httpx.AsyncClient, ...], session: Session) -> None:
        self.clients = clients
        self.session = session
        self.answers: list[tuple[int, str, float, int]] = []  # (host, token, sent at, status)
        self._stop = asyncio.Event()
        self._task: asyncio.Future[list[None]] | None = None

    async def _probe(self, host: int, token: str) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            status = await _status(self.clients[host], self.session, token)
            self.answers.append((host, token, sent, status))

    def start(self) -> None:
        self._task = asyncio.gather(
            *(
                self._probe(host, token)
                for host in range(len(self.clients))
                for token in self.session.access_tokens
                for _ in range(PROBERS_PER_TOKEN)
            )
        )

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, TEST_DEADLINE_SECONDS)

    def accepted_after(self, host: int, moment: float) -> list[tuple[int, str, float, int]]:
        return [
            answer
            for answer in self.answers
            if answer[0] == host and answer[2] >= moment and answer[3] == 200
        ]


async def _refused_everywhere(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], session: Session, ended_on: int, ended_at: float
) -> None:
    """The host that ended the session refuses every token at once; the other host within the
    propagation deadline, and then consistently."""
    here, there = clients[ended_on], clients[1 - ended_on]
    for token in session.access_tokens:
        assert [await _status(here, session, token) for _ in range(AGREEING_PROBES)] == [
            401
        ] * AGREEING_PROBES
    for token in session.access_tokens:
        while await _status(there, session, token) != 401:
            assert time.monotonic() - ended_at < PROPAGATION_DEADLINE_SECONDS, (
                "the other host still accepts it"
            )
        assert [await _status(there, session, token) for _ in range(AGREEING_PROBES)] == [
            401
        ] * AGREEING_PROBES


async def test_logout_ends_every_access_token_of_the_session_on_both_hosts(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    session = await _session(a, b)
    other = await _session(a, b, session.email)  # another device of the same user
    await _warm(clients, session)
    probes = Probes(clients, session)
    probes.start()
    await asyncio.sleep(0.3)

    logout = await a.post(
        "/api/auth/logout",
        json={"refresh_token": session.refresh_token},
        headers=_bearer(session.access_tokens[-1]),
    )
    assert logout.status_code == 204, logout.text
    ended_at = time.monotonic()
    await asyncio.sleep(0.3)
    await probes.stop()

    assert probes.accepted_after(0, ended_at) == [], "host A accepted a token of the ended session"
    await _refused_everywhere(clients, session, 0, ended_at)
    refused = await b.post("/api/auth/refresh", json={"refresh_token": session.refresh_token})
    assert refused.status_code == 401
    for http in clients:  # the other session of the same user is untouched
        assert await _status(http, other, other.access_tokens[-1]) == 200


async def test_reuse_detection_ends_every_access_token_of_the_session_on_both_hosts(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    session = await _session(a, b)
    other = await _session(a, b, session.email)
    await _warm(clients, session)
    probes = Probes(clients, session)
    probes.start()
    await asyncio.sleep(0.3)

    replayed = await a.post("/api/auth/refresh", json={"refresh_token": session.spent_refresh_tokens[0]})
    assert replayed.status_code == 401
    assert "already used" in replayed.json()["detail"]
    ended_at = time.monotonic()
    await asyncio.sleep(0.3)
    await probes.stop()

    assert probes.accepted_after(0, ended_at) == [], "host A accepted a token of the ended session"
    await _refused_everywhere(clients, session, 0, ended_at)
    refused = await b.post("/api/auth/refresh", json={"refresh_token": session.refresh_token})
    assert refused.status_code == 401
    for http in clients:
        assert await _status(http, other, other.access_tokens[-1]) == 200
