"""The batch span processor: the SDK's, except for what happens when its queue is full.

Ended spans wait in a bounded queue (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048) for the export thread. When
the collector is slow or down, the queue fills and stays full, and every sampled span after that
is dropped. The SDK drops the oldest span for each new one and builds a "Queue full" log record
each time (its filter discards all but one per 20 s only after the record is built): 4.3-4.5 us
per dropped span on the event loop, timed in process with the queue full.

Here a span that finds the queue full is dropped before the SDK sees it: a length check and a
counter (`tracing_spans_dropped_total` on /metrics), 1.3-2.0 us timed the same way, most of it
the counter. The spans already queued are kept, so what reaches the collector when it comes back
is the oldest part of the outage's traces rather than the newest. One warning per
DROP_REPORT_SECONDS says how many were dropped.
"""

from __future__ import annotations

import logging
import threading
import time

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from service.compat.opentelemetry import batch_queue
from service.observability.metrics import TRACING_SPANS_DROPPED

_logger = logging.getLogger(__name__)

DROP_REPORT_SECONDS = 60.0


class ExportQueue(BatchSpanProcessor):
    """BatchSpanProcessor (the same settings, thread, flush and shutdown) that drops a span
    finding the queue full at once, counts it, and reports the count at most once a minute."""

    def __init__(self, exporter: SpanExporter) -> None:
        super().__init__(exporter)
        found = batch_queue(self)
        # Where a release has moved the queue, the SDK's own full-queue handling applies.
        self._queue, self._bound = found if found is not None else ((), 0)
        self.dropped = 0
        self._reported = 0
        self._report_after = 0.0
        # The check and the append as one step: spans end on the event loop, but also on any
        # thread that ends one, and two of them must not both take the last place. The export
        # thread only takes spans out, which never makes the check wrong. It is held for work in
        # memory only (the warning is written after it is released), so no wait on it is long.
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            if not (self._bound and len(self._queue) >= self._bound):
                super().on_end(span)
                return
            context = span.context
            if context is None or not context.trace_flags.sampled:
                return
            report = self._count_drop()
        if report:  # written outside the lock: a slow log stream holds up no other span
            _logger.warning(
                "span export queue full (%d spans; the collector is slow or down): "
                "%d dropped since the last report",
                self._bound,
                report,
            )

    def _count_drop(self) -> int:
        """Count one dropped span; the drops to report now (once per DROP_REPORT_SECONDS), or 0."""
        self.dropped += 1
        TRACING_SPANS_DROPPED.inc()
        now = time.monotonic()
        if now < self._report_after:
            return 0
        self._report_after = now + DROP_REPORT_SECONDS
        report, self._reported = self.dropped - self._reported, self.dropped
        return report
