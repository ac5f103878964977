"""The app `service serve` runs in each worker: create_app plus what only a served worker does."""

from __future__ import annotations

import gc
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.app import create_served_app
from service.server.lifecycle import GC_YOUNGEST_THRESHOLD
from tests.conftest import running, settings_environ


@pytest.fixture
def served_environment(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # create_served_app reads the process environment, as under uvicorn.
    for name, value in settings_environ(database_url, tmp_path, DATABASE_POOL_MAX="2").items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no project .env
    sigterm = signal.getsignal(signal.SIGTERM)
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        # What the served app changes process-wide: put it back for the tests that follow.
        signal.signal(signal.SIGTERM, sigterm)
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def test_a_served_worker_keeps_garbage_collection_out_of_the_request_tail(
    served_environment: None,
) -> None:
    """Routes, signature models and the pool live as long as the worker: frozen, no full
    collection walks them again. And the youngest generation is collected less often, so a
    request's short-lived objects are not promoted into full collections (docs/scaling.md)."""
    gc.unfreeze()
    app = create_served_app()
    assert gc.get_freeze_count() == 0
    async with running(app):
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the whole app, not a handful of objects
        # What requests create after startup is collected as before.
        assert gc.isenabled()
        assert not any(obj is app for obj in gc.get_objects(generation=2))
        assert gc.get_threshold()[0] == GC_YOUNGEST_THRESHOLD > 700
