"""The task list's fast path (service/tasks/fast_list.py) answers exactly as the Litestar route.

Two apps from the same settings and database, one with the fast path and one without
(`create_app(..., task_list_fast_path=False)`), get the same requests; every answer's status,
headers (in order) and body must be the same bytes. Each request carries a fixed X-Request-ID
and the rate limiters share a clock that stands still, so nothing differs but the path taken.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import quote

import asyncpg
import httpx
import jwt
import pytest
from litestar import Litestar

from service.app import create_app
from service.security.rate_limit import CLOCK_KEY
from service.security.rate_limit import STATE_KEY as RATE_LIMITING_KEY
from service.settings import Settings
from service.tasks.fast_list import STATE_KEY, parse_query
from tests.conftest import bearer, caught_up, make_settings, make_user, running

BETTER_AUTH_SECRET = "better-auth-shared-secret-" + "b" * 20
SUPABASE_JWT_SECRET = "supabase-legacy-jwt-secret-" + "s" * 20
NOW = 1_800_000_000.0  # the limiters' clock: a window that does not turn during a test
CYRILLIC = "пользователь_42"  # outside latin-1: the Link header must percent-encode it


def better_auth_token(subject: str, lifetime: int = 600) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"sub": subject, "iat": now - 10, "exp": now + lifetime}, BETTER_AUTH_SECRET, "HS256")
    return {"Authorization": f"Bearer {token}"}


def supabase_token(subject: str) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": "https://project-ref.supabase.co/auth/v1",
        "sub": subject,
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 600,
    }
    return {"Authorization": f"Bearer {jwt.encode(claims, SUPABASE_JWT_SECRET, 'HS256')}"}


def _comparable(headers: httpx.Headers) -> list[tuple[str, str]]:
    """The headers in order; a 405's Allow as a sorted list: Litestar writes it from a set, whose
    order differs between two apps of one process (the router's answer, the same either way)."""
    return [
        (name, ", ".join(sorted(value.split(", "))) if name == "allow" else value)
        for name, value in headers.multi_items()
    ]


def segment(subject: str) -> str:
    """A subject as a path segment of a URL (httpx leaves a `%` as it is)."""
    return quote(subject, safe="")


class Pair:
    """The app with the fast path (`fast`) and the one without (`plain`), and a client of each."""

    def __init__(self, fast: Litestar, plain: Litestar, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]):
        self.fast = fast
        self.plain = plain
        self.fast_client, self.plain_client = clients
        self.sent = 0

    def forget_counts(self) -> None:
        """Both rate limiters start over (after requests sent to one app only)."""
        for app in (self.fast, self.plain):
            app.state[RATE_LIMITING_KEY].memory.counts.clear()

    @property
    def answered(self) -> int:
        return int(self.fast.state[STATE_KEY].answered)

    async def both(self, method: str, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """Send to both apps; assert the answers are the same bytes; return the fast one's."""
        self.sent += 1
        headers = {"X-Request-ID": f"parity-{self.sent}", **(headers or {})}
        answers = []
        for app, client in ((self.fast, self.fast_client), (self.plain, self.plain_client)):
            await caught_up(app)
            answers.append(await client.request(method, url, headers=headers))
        fast, plain = answers
        where = f"{method} {url} {headers}"
        assert fast.status_code == plain.status_code, f"{where}: {fast.text} / {plain.text}"
        assert _comparable(fast.headers) == _comparable(plain.headers), where
        assert fast.content == plain.content, where
        return fast


@pytest.fixture
def pair_settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        BETTER_AUTH_SECRET=BETTER_AUTH_SECRET,
        SUPABASE_JWT_SECRET=SUPABASE_JWT_SECRET,
        RATE_LIMIT_PER_MINUTE="100000",
    )


async def _pair(settings: Settings) -> AsyncIterator[Pair]:
    fast = create_app(settings)
    plain = create_app(settings, task_list_fast_path=False)
    async with AsyncExitStack() as stack:
        clients = []
        for app in (fast, plain):
            app.state[CLOCK_KEY] = lambda: NOW
            await stack.enter_async_context(running(app))
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://testserver")
                )
            )
        yield Pair(fast, plain, (clients[0], clients[1]))


@pytest.fixture
async def pair(pair_settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Pair]:
    async for value in _pair(pair_settings):
        yield value


async def _create_tasks(pair: Pair, url: str, headers: dict[str, str], count: int, text: str = "") -> None:
    for number in range(count):
        body = {"title": f"Task {number}", "is_completed": number % 3 == 0}
        if text:
            body["description"] = text
        created = await pair.plain_client.post(url, json=body, headers=headers)
        assert created.status_code == 201, created.text
    pair.forget_counts()


VALID_QUERIES = [
    "",
    *(
        "&".join(part for part in combination if part)
        for combination in itertools.product(
            ["", "completed=true", "completed=false"],
            ["", "limit=1", "limit=2", "limit=200"],
            ["", "offset=0", "offset=1", "offset=3", "offset=100000"],
        )
    ),
    "offset=2&limit=2&completed=false",  # any order
]
INVALID_QUERIES = [
    "limit=0",
    "limit=201",
    "limit=-1",
    "limit=+1",
    "limit=01",
    "limit=1.5",
    "limit=1e2",
    "limit=abc",
    "limit=",
    "limit",
    "limit=%31",
    "limit=1&limit=2",
    "limit=99999999999999999999999",
    "offset=-1",
    "offset=100001",
    "offset=1000000000000",
    "offset=",
    "completed=yes",
    "completed=1",
    "completed=0",
    "completed=TRUE",
    "completed=True",
    "completed=",
    "completed",
    "completed=true&completed=false",
    "completed=%74rue",
    "completed=t%C3%BCr",
    "limit=%E2%82%AC",
    "%E2%82%AC=1",
    "foo=bar",
    "completed=true&foo=1",
    "&",
    "limit=1&",
    "&limit=1",
    "limit=1&&offset=1",
    "limit=1+",
    "limit= 1",
    "=1",
    "user_id=someone",
]


def test_the_query_parser_answers_only_plain_values() -> None:
    assert parse_query(b"") == (None, 50, 0)
    assert parse_query(b"completed=false&limit=200&offset=100000") == (False, 200, 100000)
    for query in INVALID_QUERIES:
        assert parse_query(query.encode()) is None, query


async def test_every_list_answer_is_the_same_with_and_without_the_fast_path(
    pair: Pair, db: asyncpg.Connection, pair_settings: Settings
) -> None:
    alice = await make_user(db, "alice@example.com")
    bob = await make_user(db, "bob@example.com")
    alice_headers = bearer(pair_settings, alice)
    external = "ba_Xq81sLk2"
    users = [
        (str(alice), alice_headers),
        (external, better_auth_token(external)),
        (CYRILLIC, better_auth_token(CYRILLIC)),
        ('ünïcode wïth spaces & "quotes" %25', supabase_token('ünïcode wïth spaces & "quotes" %25')),
    ]
    for subject, headers in users:
        await _create_tasks(pair, f"/api/{segment(subject)}/tasks", headers, 5)
    await pair.both("GET", f"/api/{alice}/tasks", alice_headers)  # both caller caches warm
    answered = pair.answered

    for (subject, headers), prefix, trailing in itertools.product(users, ("/api", "/api/v1"), ("", "/")):
        path = f"{prefix}/{segment(subject)}/tasks{trailing}"
        for query in VALID_QUERIES:
            answer = await pair.both("GET", f"{path}?{query}" if query else path, headers)
            assert answer.status_code == 200
        for query in INVALID_QUERIES:
            await pair.both("GET", f"{path}?{query}", headers)
    # Every valid list went the fast way; each invalid one went to the router (its 400 or list).
    assert pair.answered - answered == 4 * 2 * 2 * len(VALID_QUERIES)

    # Next links: present while a page follows, absent on the last; percent-encoded paths.
    for subject, headers in users:
        first = await pair.both("GET", f"/api/{segment(subject)}/tasks?limit=2", headers)
        assert first.headers["x-total-count"] == "5"
        link = first.headers["link"]
        assert link.startswith("</api/")
        assert link.endswith('?limit=2&offset=2>; rel="next"')
        link.encode("ascii")
        following = await pair.both("GET", link[1 : link.index(">")], headers)
        assert following.status_code == 200
        assert len(following.json()) == 2
        last = await pair.both("GET", f"/api/{segment(subject)}/tasks?limit=2&offset=4", headers)
        assert "link" not in last.headers
    cyrillic = await pair.both("GET", f"/api/{segment(CYRILLIC)}/tasks?limit=1&completed=false", users[2][1])
    assert cyrillic.headers["link"] == (
        "</api/%D0%BF%D0%BE%D0%BB%D1%8C%D0%B7%D0%BE%D0%B2%D0%B0%D1%82%D0%B5%D0%BB%D1%8C_42/tasks"
        '?completed=false&limit=1&offset=1>; rel="next"'
    )

    # Conditional requests: a matching tag (also among others, weak, or gzip's), another, `*`.
    url = f"/api/{alice}/tasks?limit=2"
    tag = (await pair.both("GET", url, alice_headers)).headers["etag"]
    for if_none_match in (
        tag,
        f'"other", {tag}',
        f"W/{tag}",
        tag[:-1] + '-gzip"',
        '"stale"',
        "*",
        "not a tag",
        "",
    ):
        await pair.both("GET", url, {**alice_headers, "If-None-Match": if_none_match})
    assert (await pair.both("GET", url, {**alice_headers, "If-None-Match": tag})).status_code == 304

    # Who may list: no token, a malformed header, a bad, expired or foreign token, another user.
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer " + "a" * 9000},
        better_auth_token(external, lifetime=-60),
        {
            "Authorization": "Bearer "
            + jwt.encode({"sub": str(alice)}, "another secret, not the service's: " + "z" * 20, "HS256")
        },
        bearer(pair_settings, bob),
        better_auth_token("ba_somebody_else"),
    ]
    for headers in bad_headers:
        for query in ("", "limit=0", "limit=2"):
            await pair.both("GET", f"/api/{alice}/tasks?{query}", headers)
    await db.execute("UPDATE users SET is_active = false WHERE id = $1", bob)
    await pair.both("GET", f"/api/{bob}/tasks", bearer(pair_settings, bob))
    await pair.both("GET", f"/api/{uuid.uuid4()}/tasks", bearer(pair_settings, uuid.uuid4()))

    # Other methods and shapes of the path, CORS, and the paths next to the list.
    preflight = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    for method, path, headers in [
        ("HEAD", f"/api/{alice}/tasks", alice_headers),
        ("HEAD", f"/api/{alice}/tasks?limit=1", alice_headers),
        ("OPTIONS", f"/api/{alice}/tasks", {}),
        ("OPTIONS", f"/api/{alice}/tasks", preflight),
        ("OPTIONS", f"/api/{alice}/tasks", {**preflight, "Origin": "https://evil.example"}),
        ("GET", f"/api/{alice}/tasks", {**alice_headers, "Origin": "http://localhost:3000"}),
        ("GET", f"/api/{alice}/tasks", {**alice_headers, "Origin": "https://evil.example"}),
        ("GET", f"/api/{alice}/tasks", {**alice_headers, "Origin": "http://localhost:3000", "Cookie": "a=b"}),
        ("GET", f"/api/{alice}/tasks?limit=0", {**alice_headers, "Origin": "http://localhost:3000"}),
        ("GET", "/api//tasks", alice_headers),
        ("GET", f"/api/{alice}//tasks", alice_headers),
        ("GET", f"//api/{alice}/tasks", alice_headers),
        ("GET", f"/api/{alice}/tasks//", alice_headers),
        ("GET", f"/api/{alice}/tasks/1", alice_headers),
        ("GET", f"/api/{alice}/tasks/x", alice_headers),
        ("GET", f"/api/{alice}/task", alice_headers),
        ("GET", "/api/v1/tasks", alice_headers),
        ("GET", "/api/auth/tasks", alice_headers),
        ("GET", "/api/users/tasks", alice_headers),
        ("GET", f"/API/{alice}/tasks", alice_headers),
        ("GET", f"/api/{alice}/tasks", {**alice_headers, "Host": "bad host"}),
        ("GET", f"/api/{alice}/tasks", {**alice_headers, "Host": "example.com:8080"}),
        ("PUT", f"/api/{alice}/tasks", alice_headers),
        ("DELETE", f"/api/{alice}/tasks", alice_headers),
    ]:
        await pair.both(method, path, headers)

    # A large page, gzipped for a client that takes it (and its tag, and a 304 for that tag).
    await _create_tasks(pair, f"/api/{alice}/tasks", alice_headers, 60, "x" * 300)
    gzip = {**alice_headers, "Accept-Encoding": "gzip"}
    large = await pair.both("GET", f"/api/{alice}/tasks?limit=200", gzip)
    assert large.headers["content-encoding"] == "gzip"
    await pair.both("GET", f"/api/{alice}/tasks?limit=200", {**gzip, "If-None-Match": large.headers["etag"]})
    await pair.both("GET", f"/api/{alice}/tasks?limit=200", {**alice_headers, "Accept-Encoding": "br"})


@pytest.fixture
def limited_settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path, RATE_LIMIT_PER_MINUTE="6")


async def test_rate_limited_lists_are_the_same(limited_settings: Settings, db: asyncpg.Connection) -> None:
    alice = await make_user(db, "alice@example.com")
    headers = bearer(limited_settings, alice)
    async for pair in _pair(limited_settings):
        for query in ("", "limit=0", "", "", "limit=0", "", "", "", "limit=0", "limit=1"):
            await pair.both("GET", f"/api/{alice}/tasks?{query}", headers)
        await pair.both("GET", f"/api/{alice}/nothing-here", headers)
        assert (await pair.both("GET", f"/api/{alice}/tasks", headers)).status_code == 429


async def test_a_database_outage_is_the_same_503(
    pair: Pair, db: asyncpg.Connection, pair_settings: Settings
) -> None:
    alice = await make_user(db, "alice@example.com")
    bob = await make_user(db, "bob@example.com")
    headers = bearer(pair_settings, alice)
    await pair.both("GET", f"/api/{alice}/tasks", headers)  # the callers are cached: no query to authenticate
    for app in (pair.fast, pair.plain):
        await app.state.pool.close()
    failed = await pair.both("GET", f"/api/{alice}/tasks?limit=3", headers)  # the list's query fails
    assert failed.status_code == 503
    assert failed.headers["retry-after"]
    await pair.both("GET", f"/api/{bob}/tasks", bearer(pair_settings, bob))  # authentication's query fails
    await pair.both("GET", f"/api/{alice}/tasks?limit=0", headers)


async def test_a_burst_of_lists_gets_exactly_the_limit_with_or_without_the_fast_path(
    limited_settings: Settings, db: asyncpg.Connection
) -> None:
    """40 concurrent task lists against a budget of 6: six answers, 34 refusals, on either path
    (the fast path counts each request once, before it authenticates or queries)."""
    alice = await make_user(db, "alice@example.com")
    headers = bearer(limited_settings, alice)
    async for pair in _pair(limited_settings):
        answered = pair.answered
        for client in (pair.fast_client, pair.plain_client):
            answers = await asyncio.gather(
                *(client.get(f"/api/{alice}/tasks", headers=headers) for _ in range(40))
            )
            assert Counter(answer.status_code for answer in answers) == {200: 6, 429: 34}
        assert pair.answered - answered == 6, "the fast path answered the burst's lists"


async def test_a_browser_list_is_answered_by_the_route_with_its_cors_headers(
    pair_settings: Settings, db: asyncpg.Connection
) -> None:
    """A list with an Origin header goes past the fast path to the CORS layer and the route:
    the same answer either way, with the CORS headers, and not counted as a fast answer; the
    same list without Origin is answered by the fast path."""
    alice = await make_user(db, "alice@example.com")
    headers = bearer(pair_settings, alice)
    async for pair in _pair(pair_settings):
        answered = pair.answered
        browser = await pair.both(
            "GET", f"/api/{alice}/tasks", {**headers, "Origin": "http://localhost:3000"}
        )
        assert browser.status_code == 200
        assert browser.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert pair.answered == answered
        await pair.both("GET", f"/api/{alice}/tasks", headers)
        assert pair.answered == answered + 1
