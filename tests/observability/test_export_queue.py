"""A full export queue (the collector slow or down): every span that does not fit is counted on
/metrics and reported in one warning, none is lost uncounted, the queued ones reach the
collector once it answers, and requests are served throughout."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from service.observability.export_queue import ExportQueue
from service.observability.tracing import create_tracer_provider, stop_tracer_provider
from service.settings import load_settings
from tests.conftest import bearer, make_settings, make_user
from tests.observability.otlp_receiver import otlp_receiver
from tests.processes import closed_port_url, serve

QUEUE = 64
BATCH = 16
THREADS = 8
SPANS_PER_THREAD = 200
DEADLINE_SECONDS = 30


def _dropped_total() -> float:
    return REGISTRY.get_sample_value("tracing_spans_dropped_total") or 0.0


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_spans_beyond_a_full_queue_are_counted_and_the_queued_ones_delivered(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", str(QUEUE))
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", str(BATCH))
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    total = THREADS * SPANS_PER_THREAD
    counted_before = _dropped_total()
    with otlp_receiver(slow=True) as receiver:
        settings = load_settings(
            {"ENVIRONMENT": "test", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url},
            env_file=tmp_path / "absent.env",
        )
        provider = create_tracer_provider(settings)
        processor = provider._active_span_processor._span_processors[0]
        assert isinstance(processor, ExportQueue)
        tracer = provider.get_tracer("test")
        tracer.start_span("first").end()
        _until(lambda: receiver.held == 1, "the first export reached the collector and waits there")
        start = threading.Barrier(THREADS)

        def end_spans(thread: int) -> None:
            start.wait(DEADLINE_SECONDS)
            for number in range(SPANS_PER_THREAD):
                tracer.start_span(f"span {thread}-{number}").end()

        with caplog.at_level(logging.WARNING, logger="service.observability.export_queue"):
            threads = [threading.Thread(target=end_spans, args=(n,)) for n in range(THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(DEADLINE_SECONDS)
            assert not any(thread.is_alive() for thread in threads)
            assert processor.dropped == total - QUEUE, "all but a full queue dropped, each counted"
            receiver.open.set()
            _until(lambda: len(receiver.snapshot()) == 1 + QUEUE, "the queued spans reached the collector")
        stop_tracer_provider(provider)
    assert _dropped_total() - counted_before == total - QUEUE
    names = {span.name for span in receiver.snapshot()}
    assert "first" in names
    assert len(names) == 1 + QUEUE
    # The first drop is reported at once; the next report comes a minute later at the earliest.
    assert [record.getMessage() for record in caplog.records if "queue full" in record.getMessage()] == [
        f"span export queue full ({QUEUE} spans; the collector is slow or down): "
        "1 dropped since the last report"
    ]


async def test_a_collector_that_is_down_costs_spans_not_requests_and_metrics_count_them(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    user = await make_user(db)
    headers = bearer(make_settings(database_url, tmp_path), user)
    with serve(
        database_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=closed_port_url(),
        OTEL_EXPORTER_OTLP_TIMEOUT="30",  # each export keeps retrying while the queue fills
        OTEL_BSP_MAX_QUEUE_SIZE="8",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4",
        OTEL_BSP_SCHEDULE_DELAY="50",
        LOG_LEVEL="INFO",
    ) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for _ in range(3):
                answers = await asyncio.gather(
                    *(client.get(f"/api/{user}/tasks", headers=headers) for _ in range(40))
                )
                assert {answer.status_code for answer in answers} == {200}
                await asyncio.sleep(0.1)
            scrape = await client.get("/metrics")
        assert scrape.status_code == 200
        match = re.search(r"^tracing_spans_dropped_total (\S+)$", scrape.text, re.MULTILINE)
        assert match is not None, "the counter is on /metrics"
        # 120 requests, a server span and a statement span each: the queue holds 8, and the
        # export thread, retrying its first batch of at most 4, takes no other.
        assert float(match.group(1)) >= 2 * 120 - 8 - 4
    output = server.output()
    assert output.count("span export queue full") == 1, "one warning for the whole burst"
    assert "Queue full, dropping" not in output
