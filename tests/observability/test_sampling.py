"""Sampling is decided before anything is built for a request (service.observability.tracing.
TracedAsgi): an unsampled request exports nothing yet tells our dependencies the caller's trace
id with the sampled flag off; a sampled one is exactly one server span under the caller's span;
an invalid `traceparent` starts a trace of our own. Spans are recorded in memory by the SDK."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import asyncpg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from service.observability.tracing import _Decision, parse_traceparent
from service.settings import load_settings
from tests.conftest import bearer, make_settings, make_user
from tests.observability.conftest import TracedClient, access_lines, request_fetching_keys
from tests.scans.conftest import FaultyAi

CALLER_TRACE_ID = "5c0e4b9a3f2d4e1b8a7c6d5e4f3a2b1c"
CALLER_SPAN_ID = "1a2b3c4d5e6f7081"
UNSAMPLED = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-00"
SAMPLED = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"
TEXT = {"text": (None, "Project has tight budget and aggressive deadline")}


async def test_an_unsampled_caller_gets_no_spans_and_the_ai_service_hears_its_trace_unsampled(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    faulty_ai: FaultyAi,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = await make_user(db)
    headers = {**bearer(make_settings(database_url, tmp_path), user), "traceparent": UNSAMPLED}
    async with traced_client(AI_SERVICE_URL=f"{faulty_ai.url}/ok", LOG_LEVEL="INFO") as client:
        scanned = await client.post("/api/scan", headers=headers, files=TEXT)
        listed = await client.get(f"/api/{user}/tasks", headers=headers)
    assert (scanned.status_code, listed.status_code) == (201, 200), scanned.text
    assert spans.get_finished_spans() == ()
    [seen] = faulty_ai.seen
    version, trace_id, _span_id, flags = seen.headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", CALLER_TRACE_ID, "00")
    assert "tracestate" not in seen.headers
    access = access_lines(capsys.readouterr().err)
    assert [entry["trace_id"] for entry in access] == [CALLER_TRACE_ID, CALLER_TRACE_ID], (
        "logs name the trace"
    )


async def test_an_unsampled_callers_jwks_fetch_carries_its_trace_unsampled(
    traced_client: TracedClient, spans: InMemorySpanExporter
) -> None:
    response, provider = await request_fetching_keys(traced_client, spans, {"traceparent": UNSAMPLED})
    assert response.status_code == 200, response.text
    assert spans.get_finished_spans() == ()
    [seen] = provider.seen
    version, trace_id, _span_id, flags = seen["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", CALLER_TRACE_ID, "00")


async def test_a_sampled_request_is_one_server_span_under_the_callers_span(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    user = await make_user(db)
    headers = {**bearer(make_settings(database_url, tmp_path), user), "traceparent": SAMPLED}
    # The ratio is for new traces: a sampled caller is followed whatever it is.
    async with traced_client(
        OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0"
    ) as client:
        response = await client.get(f"/api/{user}/tasks", headers=headers)
    assert response.status_code == 200
    finished = spans.get_finished_spans()
    [server] = [span for span in finished if span.kind is SpanKind.SERVER]
    assert server.name == "GET /api/{user_id}/tasks"
    assert server.parent is not None
    assert server.parent.is_remote
    assert (format_trace_id(server.context.trace_id), format_span_id(server.parent.span_id)) == (
        CALLER_TRACE_ID,
        CALLER_SPAN_ID,
    )
    assert server.context.trace_flags.sampled
    assert server.attributes is not None
    assert server.attributes["http.target"] == f"/api/{user}/tasks"
    assert server.attributes["http.method"] == "GET"
    assert server.resource.attributes["service.name"] == "service"
    others = [span for span in finished if span is not server]
    assert others, "the statements have spans"
    assert all(span.parent is not None and span.parent.span_id == server.context.span_id for span in others)


async def test_concurrent_requests_each_pass_on_their_own_trace_sampled_or_not(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    faulty_ai: FaultyAi,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    """An unsampled request puts its trace in the context only when it calls a dependency
    (service.observability.tracing.continue_unsampled_trace); with many requests in flight at
    once, sampled and not, each dependency call still carries its own request's trace and flag,
    and only the sampled requests leave spans."""
    user = await make_user(db)
    auth = bearer(make_settings(database_url, tmp_path), user)
    traces = [f"{random.getrandbits(128) | 1:032x}" for _ in range(16)]
    sampled = {trace for number, trace in enumerate(traces) if number % 4 == 0}

    def parent(trace: str) -> str:
        return f"00-{trace}-{CALLER_SPAN_ID}-{'01' if trace in sampled else '00'}"

    async with traced_client(
        AI_SERVICE_URL=f"{faulty_ai.url}/ok", SCAN_MAX_CONCURRENT_UPLOADS="16"
    ) as client:
        answers = await asyncio.gather(
            *(
                client.post("/api/scan", headers={**auth, "traceparent": parent(trace)}, files=TEXT)
                for trace in traces
            ),
            *(
                client.get(f"/api/{user}/tasks", headers={**auth, "traceparent": parent(trace)})
                for trace in traces
            ),
        )
    assert sorted({answer.status_code for answer in answers}) == [200, 201], [
        a.text for a in answers if a.status_code >= 500
    ]
    heard = sorted(seen.headers["traceparent"].split("-") for seen in faulty_ai.seen)
    assert [(trace, flags) for _, trace, _, flags in heard] == sorted(
        (trace, "01" if trace in sampled else "00") for trace in traces
    )
    finished = spans.get_finished_spans()
    clients = {
        (format_trace_id(span.context.trace_id), format_span_id(span.context.span_id)) for span in finished
    }
    # A sampled call is under the client span it recorded; an unsampled one records nothing.
    assert {(trace, span_id) for _, trace, span_id, _ in heard if trace in sampled} <= clients
    traced = {format_trace_id(span.context.trace_id) for span in finished}
    assert traced == sampled


@pytest.mark.parametrize(
    ("ratio", "traced"), [("0", 0), ("0.0", 0), ("1", 5), ("1.0", 5)], ids=["0", "0.0", "1", "1.0"]
)
async def test_the_ratio_sampler_keeps_none_or_all_new_traces(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    ratio: str,
    traced: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with traced_client(
        OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=ratio, LOG_LEVEL="INFO"
    ) as client:
        for _ in range(5):
            assert (await client.get("/api/no/such/thing")).status_code == 404
    servers = [span for span in spans.get_finished_spans() if span.kind is SpanKind.SERVER]
    assert len(servers) == traced
    assert len({span.context.trace_id for span in servers}) == traced, "each request a trace of its own"
    assert all(span.parent is None for span in servers)
    logged = [entry["trace_id"] for entry in access_lines(capsys.readouterr().err)]
    assert len(set(logged)) == len(logged) == 5, "sampled or not, each access line names its trace"
    assert {format_trace_id(span.context.trace_id) for span in servers} <= set(logged)


async def test_traceidratio_alone_decides_by_trace_id_even_for_a_sampled_caller(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    faulty_ai: FaultyAi,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    user = await make_user(db)
    headers = {**bearer(make_settings(database_url, tmp_path), user), "traceparent": SAMPLED}
    async with traced_client(
        AI_SERVICE_URL=f"{faulty_ai.url}/ok", OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0"
    ) as client:
        assert (await client.post("/api/scan", headers=headers, files=TEXT)).status_code == 201
    assert spans.get_finished_spans() == ()
    [seen] = faulty_ai.seen
    assert seen.headers["traceparent"].split("-")[1::2] == [CALLER_TRACE_ID, "00"]


@pytest.mark.parametrize(
    "traceparent",
    [
        f"00-{CALLER_TRACE_ID.upper()}-{CALLER_SPAN_ID}-01",  # hex is lowercase
        f"00-{'0' * 32}-{CALLER_SPAN_ID}-01",  # all-zero trace id
        f"00-{CALLER_TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01",  # version ff is invalid
        f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01-extra",  # version 00 has four fields
        f"00-{CALLER_TRACE_ID[:-1]}-{CALLER_SPAN_ID}-01",  # short trace id
        f"00_{CALLER_TRACE_ID}_{CALLER_SPAN_ID}_01",
        f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-0x",
        "garbage",
    ],
)
async def test_an_invalid_traceparent_starts_a_new_root(
    traced_client: TracedClient, spans: InMemorySpanExporter, traceparent: str
) -> None:
    async with traced_client() as client:
        assert (
            await client.get("/api/no/such/thing", headers={"traceparent": traceparent})
        ).status_code == 404
    [server] = spans.get_finished_spans()
    assert server.parent is None
    assert format_trace_id(server.context.trace_id) != CALLER_TRACE_ID


def test_the_traceparent_parser_follows_w3c_trace_context() -> None:
    assert parse_traceparent(SAMPLED.encode()) == (CALLER_TRACE_ID, CALLER_SPAN_ID, 1)
    assert parse_traceparent(f" {UNSAMPLED}\t".encode()) == (CALLER_TRACE_ID, CALLER_SPAN_ID, 0)
    # A later version may add fields; its first four are read as version 00's.
    assert parse_traceparent(f"01-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-03-more".encode()) == (
        CALLER_TRACE_ID,
        CALLER_SPAN_ID,
        3,
    )
    assert parse_traceparent(SAMPLED.encode() + b"-" * 600) is None, "bounded like the SDK's (512)"


@pytest.mark.parametrize("sampler", ["traceidratio", "parentbased_traceidratio"])
def test_new_traces_are_kept_exactly_when_the_sdks_ratio_sampler_keeps_them(
    sampler: str, tmp_path: Path
) -> None:
    """Our decision before the request and the SDK's TraceIdRatioBased agree on every trace id,
    so services sampling at the same ratio keep the same traces."""
    settings = load_settings(
        {
            "ENVIRONMENT": "test",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "OTEL_TRACES_SAMPLER": sampler,
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        },
        env_file=tmp_path / "absent.env",
    )
    ours, sdk = _Decision(settings), TraceIdRatioBased(0.25)
    generator = random.Random(7)
    ids = [generator.getrandbits(128) for _ in range(4000)]
    kept = [ours.sampled(trace_id, None) for trace_id in ids]
    assert kept == [
        sdk.should_sample(None, trace_id, "x").decision is Decision.RECORD_AND_SAMPLE for trace_id in ids
    ]
    assert 800 < sum(kept) < 1200
    assert ours.sampled(ids[0], 1) is (sampler.startswith("parentbased") or kept[0])


async def test_a_new_trace_left_out_is_passed_on_unsampled_under_the_id_the_log_names(
    traced_client: TracedClient,
    spans: InMemorySpanExporter,
    faulty_ai: FaultyAi,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No caller's trace and the ratio says no: the AI service is told the trace is not sampled
    (flags 02: random trace id, sampled bit off), so it does not start one of its own."""
    user = await make_user(db)
    headers = bearer(make_settings(database_url, tmp_path), user)
    async with traced_client(
        AI_SERVICE_URL=f"{faulty_ai.url}/ok",
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
        LOG_LEVEL="INFO",
    ) as client:
        assert (await client.post("/api/scan", headers=headers, files=TEXT)).status_code == 201
    assert spans.get_finished_spans() == ()
    [seen] = faulty_ai.seen
    version, trace_id, _span_id, flags = seen.headers["traceparent"].split("-")
    assert (version, flags) == ("00", "02")
    [access] = access_lines(capsys.readouterr().err)
    assert access["trace_id"] == trace_id
