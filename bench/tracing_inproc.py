"""CPU time per task-list request in process, tracing off and on at several sampling ratios.

bench/inproc.py's method (64 concurrent callers invoke each ASGI app directly on uvloop, the
process's CPU time divided by the requests served, short alternating rounds, the best round
the figure) for the same service built with tracing off and with
`parentbased_traceidratio` at each ratio, exporting over OTLP/HTTP to a closed port (the
exporter's thread runs, fails and drops, as with a collector that is down). Without sockets and
uvicorn, the figures isolate what tracing costs our Python code; bench/tracing_cpu.py measures
the served process.

    uv run python bench/tracing_inproc.py --database-url postgresql://postgres@127.0.0.1:5432/bench

The database must be migrated; the Better Auth subject's tasks are created if missing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.inproc import _call, _drive, _lifespan, _scope  # noqa: E402
from bench.scenarios import BETTER_AUTH_SECRET, external_tokens  # noqa: E402
from bench.tracing_cpu import SUBJECT  # noqa: E402
from tests.processes import closed_port_url  # noqa: E402


async def layer_cost(requests: int = 50_000) -> None:
    """The server span layer alone around a bare ASGI app, for a request the sampler leaves out."""
    import time

    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from service.observability import tracing
    from service.settings import load_settings

    settings = load_settings(
        {
            "ENVIRONMENT": "test",
            "OTEL_EXPORTER_OTLP_ENDPOINT": closed_port_url(),
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0",
        },
        env_file=Path("/nonexistent"),
    )
    provider = tracing.create_tracer_provider(settings, SimpleSpanProcessor(InMemorySpanExporter()))

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})

    async def send(message: Any) -> None:
        pass

    layered = tracing.traced_asgi(bare, provider, settings)
    scope = _scope(f"/api/{SUBJECT}/tasks", "token")

    async def per_request(app: Any) -> float:
        started = time.process_time()
        for _ in range(requests):
            await app(dict(scope), None, send)
        return (time.process_time() - started) / requests * 1e6

    costs = [await per_request(layered) - await per_request(bare) for _ in range(3)]
    print(f"the server span layer, unsampled request: {min(costs):.2f} µs CPU (best of 3 x {requests})")


async def main(args: argparse.Namespace) -> None:
    await layer_cost()
    from service.app import create_app
    from service.settings import load_settings

    base = {
        "ENVIRONMENT": "production",
        "ACCOUNT_MAIL": "off",
        "DATABASE_URL": args.database_url,
        "JWT_SECRET": "bench-" + "k" * 40,
        "MFA_ENCRYPTION_KEY": "bench-mfa-" + "m" * 40,  # production requires it
        "BETTER_AUTH_SECRET": BETTER_AUTH_SECRET,
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "AUTH_RATE_LIMIT_PER_MINUTE": "100000000",
        "LOG_LEVEL": "INFO",
        "AI_SERVICE_URL": "http://127.0.0.1:9",
    }
    collector = closed_port_url()
    apps: dict[str, Any] = {"off": create_app(load_settings(base, env_file=Path("/nonexistent")))}
    for ratio in args.ratios.split(","):
        traced = {
            **base,
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": ratio,
        }
        apps[f"traced {ratio}"] = create_app(load_settings(traced, env_file=Path("/nonexistent")))
    stops = [await _lifespan(app) for app in apps.values()]
    token = external_tokens(SUBJECT)["better_auth"]
    path = f"/api/{SUBJECT}/tasks"
    off = apps["off"]
    status, body = await _call(off, _scope(path, token))
    assert status == 200, body
    for number in range(20 - body.count(b'"id"')):
        create = _scope(path, token, "POST")
        create["headers"].append((b"content-type", b"application/json"))
        status, body = await _call(off, create, f'{{"title":"Task {number}"}}'.encode())
        assert status == 201, body
    runs: dict[str, list[float]] = {name: [] for name in apps}
    for number in range(args.rounds):
        names = list(apps)
        for name in names[number % len(names) :] + names[: number % len(names)]:
            runs[name].append((await _drive(apps[name], path, token, args.requests, 64))[0])
    best_off = min(runs["off"])
    for name, figures in runs.items():
        best = min(figures)
        print(
            f"{name:14s} best {best:6.1f} µs CPU/request, median {statistics.median(figures):6.1f}; "
            f"{best / best_off:.2f}x off (+{best - best_off:.1f} µs)"
        )
    for stop in stops:
        await stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--ratios", default="0,0.1,1.0")
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=10)
    uvloop.run(main(parser.parse_args()))
