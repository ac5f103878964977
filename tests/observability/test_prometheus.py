"""deploy/prometheus and deploy/grafana against the real thing: Debian's Prometheus scraping a
running service through the shipped config and rules, and the dashboard's every metric in /metrics."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.settings import PROJECT_ROOT
from tests import reaper
from tests.conftest import bearer, make_settings, make_user
from tests.processes import free_port, serve, wait_until_answering
from tests.system_tools import require_tool

PROMETHEUS_DIR = PROJECT_ROOT / "deploy" / "prometheus"
DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "service.json"
INSTALL = "apt-get install prometheus"
METRICS_TOKEN = "scrape-token-" + "s" * 32
DEADLINE_SECONDS = 90
TASKS_ROUTE = "/api/{user_id}/tasks"


def _config_for(target: str, token_file: Path) -> dict[str, Any]:
    """The shipped config, pointed at one local target, scraping and evaluating every second."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / path) for path in config["rule_files"]]
    [job] = config["scrape_configs"]
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"] = [{"targets": [target]}]
    return config


@contextmanager
def prometheus(config_file: Path, workdir: Path) -> Iterator[str]:
    binary = require_tool("prometheus", INSTALL)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "prometheus.log"
    with log.open("wb") as sink:
        process = reaper.popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = lambda answer: answer.status_code == 200  # noqa: E731
        wait_until_answering(f"{url}/-/ready", process, log.read_text, DEADLINE_SECONDS, ready)
        yield url
    finally:
        reaper.stop(process, timeout=20)


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def _poll(
    url: str, promql: str, between: Callable[[], None] = lambda: None, series: int = 1
) -> list[dict[str, Any]]:
    """The query's result once it has `series` series, calling `between` before each try."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        between()
        if len(result := _query(url, promql)) >= series:
            return result
        assert time.monotonic() < deadline, f"{promql} stayed empty"
        time.sleep(0.5)


async def test_prometheus_scrapes_the_service_and_the_recording_rules_see_its_requests(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    promtool = require_tool("promtool", INSTALL)
    user = await make_user(db)
    headers = bearer(make_settings(database_url, tmp_path), user)
    with serve(database_url, tmp_path, METRICS_TOKEN=METRICS_TOKEN) as service:
        token_file = tmp_path / "metrics_token"
        token_file.write_text(METRICS_TOKEN)
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(_config_for(service.url.removeprefix("http://"), token_file)))
        subprocess.run([promtool, "check", "config", str(config_file)], check=True, capture_output=True)
        with prometheus(config_file, tmp_path) as url:
            _poll(url, 'up{job="service"} == 1')  # scraped, with the token

            def list_own_and_anothers_tasks() -> None:
                # A counter's first sample is not an increase: keep requesting until a rate shows.
                assert httpx.get(f"{service.url}/api/{user}/tasks", headers=headers).status_code == 200
                other = f"{service.url}/api/{uuid.uuid4()}/tasks"
                assert httpx.get(other, headers=headers).status_code == 403

            rates = _poll(
                url,
                f'route_method_status:http_requests:rate5m{{route="{TASKS_ROUTE}", status=~"200|403"}} > 0',
                list_own_and_anothers_tasks,
                series=2,
            )
            latency = _poll(url, f'route:http_request_duration_seconds:p99_5m{{route="{TASKS_ROUTE}"}} > 0')
    assert sorted((series["metric"]["method"], series["metric"]["status"]) for series in rates) == [
        ("GET", "200"),
        ("GET", "403"),
    ]
    assert latency[0]["metric"]["job"] == "service"


_FUNCTION_OR_KEYWORD = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}


def metric_names(promql: str) -> set[str]:
    """The series names a PromQL expression reads (not its functions, labels or durations)."""
    text = re.sub(r'"[^"]*"', "", promql)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*(?!\s*\()\b", text))
    return {name for name in names if name not in _FUNCTION_OR_KEYWORD and not re.match(r"^\d", name)}


def _recording_rules() -> dict[str, str]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "rules" / "recording.yml").read_text())["groups"]
    return {rule["record"]: rule["expr"] for group in groups for rule in group["rules"]}


def _dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


async def test_every_metric_the_dashboard_and_the_rules_name_is_served(client: httpx.AsyncClient) -> None:
    await client.get("/health")  # so the request histogram has a series
    served = {
        sample.name
        for family in text_string_to_metric_families((await client.get("/metrics")).text)
        for sample in family.samples
    }
    recorded = _recording_rules()
    alerts = yaml.safe_load((PROMETHEUS_DIR / "rules" / "alerts.yml").read_text())["groups"]
    expressions = [
        *_dashboard_expressions(),
        *recorded.values(),
        *(rule["expr"] for group in alerts for rule in group["rules"]),
    ]
    assert len(_dashboard_expressions()) >= 12
    for expression in expressions:
        for name in metric_names(expression):
            if ":" in name:
                assert name in recorded, f"{name} is not a recording rule ({expression})"
            elif name != "up":  # Prometheus' own
                assert name in served, f"{name} is not in /metrics ({expression})"


def test_the_dashboards_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = require_tool("promtool", INSTALL)
    expressions = [expression.replace("$job", "service") for expression in _dashboard_expressions()]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{number}", "expr": expression}
                    for number, expression in enumerate(expressions)
                ],
            }
        ]
    }
    rules_file = tmp_path / "dashboard.yml"
    rules_file.write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
