"""Render /docs and /redoc in headless Chromium with every host but 127.0.0.1 unreachable.

Passes when Swagger UI and ReDoc both render the API's operations from assets served by the
service itself, and the browser reports no Content-Security-Policy violation on either page. Run: `uv run python scripts/check_docs_offline.py [--screenshot DIR]`.
Needs Debian's `chromium` (`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=15000",
    "--window-size=1280,900",
    # The page's console messages, CSP violations included, go to stderr.
    "--enable-logging=stderr",
    "--v=0",
]
CSP_VIOLATION = "Content Security Policy"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _chromium(profile: str, *args: str) -> tuple[str, list[str]]:
    """The command's stdout, and the console messages the page logged."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        sys.exit("chromium is not installed: apt-get install chromium")
    result = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--screenshot", type=Path, help="also save PNG screenshots into this folder")
    args = parser.parse_args()
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="docs-check-")
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env={**os.environ, "DATA_DIR": data_dir, "LOG_LEVEL": "WARNING"},
    )
    base = f"http://127.0.0.1:{port}"
    failures = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the service did not start")
            time.sleep(0.2)
        operations = httpx.get(f"{base}/openapi.json").json()["paths"]
        expected = next(iter(operations))
        checks = {"/docs": ["opblock", expected], "/redoc": ["redoc-wrap", expected]}
        with tempfile.TemporaryDirectory() as profile:
            for page, needles in checks.items():
                dom, console = _chromium(profile, "--dump-dom", f"{base}{page}")
                missing = [needle for needle in needles if needle not in dom]
                blocked = [line for line in console if CSP_VIOLATION in line]
                status = "ok" if not missing else f"FAILED (missing {missing})"
                print(f"{page}: rendered {len(dom)} bytes of DOM offline: {status}")
                print(f"{page}: {len(blocked)} CSP violations in the console", *blocked, sep="\n  ")
                if missing or blocked:
                    failures.append(page)
                if args.screenshot:
                    args.screenshot.mkdir(parents=True, exist_ok=True)
                    target = args.screenshot / f"{page.strip('/')}.png"
                    _chromium(profile, f"--screenshot={target}", f"{base}{page}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
