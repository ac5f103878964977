"""The compose example's replicas start: their environment passes production's settings checks.

A missing required setting (a secret, SMTP_URL) would make every replica exit at start-up with
one line, which `compose up` shows only as a restart loop.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import yaml

from service.settings import load_settings

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"
# `${NAME:?message}`: compose refuses to start unless the operator sets NAME.
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]*\}$")
OPERATOR_VALUES = {"SMTP_URL": "smtp://user:password@smtp.example.com:587"}


def _replica_environment() -> dict[str, str]:
    compose = yaml.safe_load(COMPOSE.read_text())
    environment: dict[str, str] = {}
    for name, value in compose["services"]["api-1"]["environment"].items():
        required = REQUIRED.match(str(value))
        if required:
            environment[name] = OPERATOR_VALUES.get(required["name"], secrets.token_urlsafe(48))
        else:
            environment[name] = str(value)
    return environment


def test_the_compose_replicas_environment_passes_production_settings(tmp_path: Path) -> None:
    environment = _replica_environment()
    assert environment["ENVIRONMENT"] == "production"
    settings = load_settings(environment, env_file=tmp_path / "no.env")
    assert settings.is_production
    assert settings.smtp_url, "production mail needs a relay"
