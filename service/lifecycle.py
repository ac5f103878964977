"""Graceful shutdown: on SIGTERM readiness turns 503 first, then uvicorn drains in-flight requests.

A load balancer polling /health/ready stops sending new traffic during the drain delay; after it,
uvicorn's own handler runs: it stops accepting connections and waits for requests in flight.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

# Process-wide by nature: a signal is delivered to the process, not to one app instance.
SHUTTING_DOWN = threading.Event()


def install_drain_handler(drain_seconds: float) -> None:
    """Wrap the SIGTERM handler uvicorn installed; call from the worker once the server runs."""
    uvicorn_handler = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        first = not SHUTTING_DOWN.is_set()
        SHUTTING_DOWN.set()
        if not callable(uvicorn_handler):
            raise SystemExit(0)
        if first and drain_seconds > 0:
            _later(drain_seconds, uvicorn_handler, signum, frame)
        else:
            uvicorn_handler(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def _later(delay: float, handler: Callable[..., Any], *args: Any) -> None:
    # uvicorn's handler only sets a flag its main loop polls, so calling it from a timer is safe.
    timer = threading.Timer(delay, handler, args=args)
    timer.daemon = True
    timer.start()
