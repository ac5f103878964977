"""Run only by tests/foundation/test_process_cleanup.py, in a pytest of its own (the file name keeps
it out of the main collection): an async test that starts processes of every kind the suite starts,
says which, and blocks, past cancellations, until its pytest is interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from service.db.embedded import EmbeddedPostgres
from tests import reaper
from tests.processes import serve

REPORT_VARIABLE = "PROBE_REPORT"
# A child that starts a grandchild: the group, not just the child, has to go.
PARENT_OF_A_SLEEPER = "import subprocess, time; subprocess.Popen(['sleep', '600']); time.sleep(600)"


async def test_starts_processes_and_blocks(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "db")
    url = server.start()
    children = [reaper.popen([sys.executable, "-c", PARENT_OF_A_SLEEPER])]
    node = shutil.which("node")
    if node:
        children.append(reaper.popen([node, "-e", "setInterval(() => {}, 1000)"]))
    with serve(url, tmp_path, "--workers", "2") as served:
        report = {
            "run": os.environ[reaper.RUN_MARKER],
            "groups": [served.process.pid, *(child.pid for child in children)],
            "postmaster": int((server.pgdata / "postmaster.pid").read_text().splitlines()[0]),
            "node": bool(node),
        }
        Path(os.environ[REPORT_VARIABLE]).write_text(json.dumps(report))
        await wait_past_every_cancellation()


async def wait_past_every_cancellation() -> None:
    """Stuck as a test waiting on a lost future was: it outlives the cancellation of its task."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(600)
