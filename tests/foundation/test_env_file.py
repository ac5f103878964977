"""`.env` is read by python-dotenv's rules, under the environment; the CLI puts its values into
os.environ (never over a set variable) for what reads the environment itself; every secret may
come from the file NAME_FILE names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import SECRET_SETTINGS, Settings, SettingsError, load_env_file, load_settings
from tests.conftest import TEST_JWT_SECRET

OTHER_SECRET = "another-secret-that-is-long-enough-for-hs256-0123456789"


def _settings(tmp_path: Path, env_text: str | None = None, **environ: str) -> Settings:
    env_file = tmp_path / ".env"
    if env_text is not None:
        env_file.write_text(env_text)
    return load_settings({"DATA_DIR": str(tmp_path), **environ}, env_file=env_file)


def test_a_trailing_comment_and_quotes_are_not_part_of_the_value(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        f"JWT_SECRET={TEST_JWT_SECRET}  # the frontend's secret\n"
        'BETTER_AUTH_SECRET="quoted secret with spaces and a # inside it" # comment\n'
        "SUPABASE_JWT_SECRET='single quoted'\n"
        'LOG_LEVEL="WARNING"\n'
        "export LOG_FORMAT=text\n",
    )
    assert settings.jwt_secret == TEST_JWT_SECRET
    assert settings.better_auth_secret == "quoted secret with spaces and a # inside it"
    assert settings.supabase_jwt_secret == "single quoted"
    assert (settings.log_level, settings.log_format) == ("WARNING", "text")


def test_escapes_in_double_quotes_are_expanded(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f'JWT_SECRET={TEST_JWT_SECRET}\nBETTER_AUTH_SECRET="tab\\there"\n')
    assert settings.better_auth_secret == "tab\there"


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, "LOG_LEVEL=DEBUG\nJWT_SECRET=short\n", LOG_LEVEL="ERROR", JWT_SECRET=OTHER_SECRET
    )
    assert (settings.log_level, settings.jwt_secret) == ("ERROR", OTHER_SECRET)


def test_load_env_file_fills_os_environ_without_overriding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=staging  # for the SDK\n"
        "PROMETHEUS_MULTIPROC_DIR=/from/the/file\n"
        "WEB_CONCURRENCY=3\n"
        "SERVICE_ADMIN_PASSWORD=left-in-a-file\n"
    )
    # Set, then removed: monkeypatch then restores (removes) what load_env_file adds.
    for name in ("OTEL_RESOURCE_ATTRIBUTES", "WEB_CONCURRENCY", "SERVICE_ADMIN_PASSWORD"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/set/by/the/environment")
    load_env_file(tmp_path / ".env")
    assert os.environ["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=staging"
    assert os.environ["WEB_CONCURRENCY"] == "3"
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == "/set/by/the/environment"
    assert "SERVICE_ADMIN_PASSWORD" not in os.environ, "an admin's password is read from the environment only"

    from opentelemetry.sdk.resources import Resource

    assert Resource.create().attributes["deployment.environment"] == "staging"


def _cli(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        key: value
        for key, value in os.environ.items()
        if key
        not in ("WEB_CONCURRENCY", "DATABASE_URL", "DATABASE_URL_FILE", "JWT_SECRET", "JWT_SECRET_FILE")
    }
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=workdir,
        env={**environ, "DATA_DIR": str(workdir), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_reads_web_concurrency_from_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WEB_CONCURRENCY=3 # workers\n")
    refused = _cli(tmp_path, "serve", "--reload")
    assert refused.returncode == 2
    assert "--reload runs a single worker; drop --workers 3" in refused.stderr


def test_a_secret_is_read_from_its_file_without_the_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "jwt_secret"
    secret.write_text(OTHER_SECRET + "\n")
    assert _settings(tmp_path, JWT_SECRET_FILE=str(secret)).jwt_secret == OTHER_SECRET
    url_file = tmp_path / "database_url"
    url_file.write_text("postgresql://app:p%40ss@db.example.com:5432/app\r\n")
    settings = _settings(tmp_path, JWT_SECRET=TEST_JWT_SECRET, DATABASE_URL_FILE=str(url_file))
    assert settings.database_url == "postgresql://app:p%40ss@db.example.com:5432/app"


def test_every_secret_setting_has_a_file_variable(tmp_path: Path) -> None:
    for name in (field for field in SECRET_SETTINGS if field in Settings.__struct_fields__):
        secrets = tmp_path / "secrets"
        secrets.mkdir(exist_ok=True)
        path = secrets / name
        # Each secret its own value: a provider's secret equal to JWT_SECRET is refused.
        value = "postgresql://u:p@127.0.0.1:5432/d" if name.endswith("_url") else f"{OTHER_SECRET}-{name}"
        value = {
            "redis_url": "redis://:p@127.0.0.1:6379/0",
            "smtp_url": "smtp://u:p@127.0.0.1:1025",
            "sentry_dsn": "http://public@127.0.0.1:9/1",
        }.get(name, value)
        path.write_text(value + "\n")
        extra = {
            "better_auth_secret": {"BETTER_AUTH_URL": "https://auth.example.com"},
            "mfa_encryption_old_keys": {"MFA_ENCRYPTION_KEY": "current-" + OTHER_SECRET},
        }.get(name, {})
        settings = _settings(tmp_path, **{f"{name.upper()}_FILE": str(path)}, **extra)
        expected = (value,) if name == "mfa_encryption_old_keys" else value  # a comma list
        assert getattr(settings, name) == expected, name
    assert {
        "database_url",
        "jwt_secret",
        "better_auth_secret",
        "supabase_jwt_secret",
        "metrics_token",
    } <= set(SECRET_SETTINGS)


def test_setting_both_a_secret_and_its_file_is_an_error_naming_both(tmp_path: Path) -> None:
    secret = tmp_path / "jwt_secret"
    secret.write_text(OTHER_SECRET)
    with pytest.raises(SettingsError, match=r"JWT_SECRET_FILE: JWT_SECRET is set too"):
        _settings(tmp_path, JWT_SECRET=TEST_JWT_SECRET, JWT_SECRET_FILE=str(secret))


def test_a_secret_file_in_the_environment_wins_over_the_secret_in_env_file(tmp_path: Path) -> None:
    secret = tmp_path / "jwt_secret"
    secret.write_text(OTHER_SECRET)
    settings = _settings(tmp_path, f"JWT_SECRET={TEST_JWT_SECRET}\n", JWT_SECRET_FILE=str(secret))
    assert settings.jwt_secret == OTHER_SECRET


def test_an_unreadable_secret_file_names_the_variable_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(SettingsError, match=rf"invalid METRICS_TOKEN_FILE: cannot read {missing}"):
        _settings(tmp_path, METRICS_TOKEN_FILE=str(missing))


def test_the_cli_uses_a_database_url_file(tmp_path: Path) -> None:
    url_file = tmp_path / "database_url"
    url_file.write_text("postgresql://app:secret@127.0.0.1:9/app\n")
    printed = _cli(tmp_path, "db-url", DATABASE_URL_FILE=str(url_file))
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == "postgresql://app:secret@127.0.0.1:9/app"
    both = _cli(
        tmp_path, "db-url", DATABASE_URL_FILE=str(url_file), DATABASE_URL="postgresql://x@127.0.0.1/x"
    )
    assert both.returncode == 2
    assert "DATABASE_URL_FILE: DATABASE_URL is set too" in both.stderr
