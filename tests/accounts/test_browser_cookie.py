"""A browser frontend on another origin keeps its session in the HttpOnly refresh cookie.

Headless Chromium (Debian's `chromium`) opens a page served from a loopback server of its own,
on a free port rather than 5173 (which a developer's Vite may hold) and listed in CORS_ORIGINS.
The page logs in against a real `service serve` with `credentials: "include"`, reloads (so
nothing survives in memory), refreshes through the cookie, checks that `document.cookie` does not
show it, and logs out; its results go into the DOM, which `--dump-dom` prints.

The page lives under /api/auth/ on its own server: the same host name (localhost) and a path the
cookie's Path matches, so `document.cookie` would show the refresh cookie if it were not HttpOnly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from tests import reaper
from tests.accounts.conftest import STRONG_PASSWORD
from tests.processes import http_server_in_thread, serve
from tests.system_tools import require_tool

PAGE = (Path(__file__).parent / "browser_session.html").read_bytes()
PAGE_PATH = "/api/auth/app.html"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP localhost 127.0.0.1, MAP * ~NOTFOUND",
    "--virtual-time-budget=30000",
]


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?")[0] != PAGE_PATH:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reports what matters."""


@pytest.fixture
def page_origin() -> Iterator[str]:
    with http_server_in_thread(_PageHandler) as server:
        yield f"http://localhost:{server.server_port}"


def test_a_browser_keeps_its_session_in_the_httponly_cookie(
    database_url: str, tmp_path: Path, page_origin: str
) -> None:
    chromium = require_tool("chromium", "apt-get install chromium")
    with serve(database_url, tmp_path, AUTH_COOKIES="on", CORS_ORIGINS=page_origin) as api:
        api_origin = api.url.replace("127.0.0.1", "localhost")
        email = "browser-user@example.com"
        registered = httpx.post(
            f"{api.url}/api/auth/register", json={"email": email, "password": STRONG_PASSWORD}
        )
        assert registered.status_code == 201
        page = f"{page_origin}{PAGE_PATH}?api={api_origin}&email={email}&password={STRONG_PASSWORD}"
        # Chromium runs helper processes of its own: `reaper.run` stops its whole group.
        dom = reaper.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stdout
    found = re.search(r"RESULT (\{.*?\})</pre>", dom)
    assert found, f"the page did not finish:\n{dom[-2000:]}"
    results = json.loads(found.group(1).replace("&quot;", '"'))
    assert results == {
        "login": 200,
        "login_body_has_refresh_token": True,
        "cookie_visible_after_login": False,
        "reloaded": True,
        "refresh_through_cookie": 200,
        "cookie_visible_after_refresh": False,
        "me": 200,
        "logout": 204,
        "refresh_after_logout": 401,
    }, results
