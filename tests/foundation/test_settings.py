from pathlib import Path

import pytest

from service.settings import SettingsError, load_settings

STRONG = "s" * 32


def load(tmp_path: Path, **env: str):
    return load_settings({"DATA_DIR": str(tmp_path), **env}, env_file=tmp_path / ".env")


def test_defaults_follow_the_contract(tmp_path: Path) -> None:
    settings = load(tmp_path, JWT_SECRET=STRONG)
    assert settings.database_url is None
    assert (settings.database_pool_min, settings.database_pool_max) == (2, 10)
    assert settings.database_pooler == "none"
    assert settings.environment == "development"
    assert settings.jwt_algorithm == "HS256"
    assert settings.access_token_expire_minutes == 30
    assert settings.refresh_token_expire_days == 30
    assert settings.cors_origins == (
        "http://localhost:3000",
        "http://localhost:5173",
        "http://localhost:8080",
    )
    assert settings.ai_service_url == "http://localhost:8082"
    assert settings.ai_service_timeout_seconds == 60
    assert settings.max_upload_bytes == 10485760
    assert (settings.rate_limit_per_minute, settings.auth_rate_limit_per_minute) == (600, 20)
    assert (settings.login_max_failures, settings.login_lockout_minutes) == (5, 15)
    assert (settings.log_level, settings.log_format) == ("INFO", "json")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_POOL_MAX", "many"),
        ("DATABASE_POOL_MAX", "0"),
        ("DATABASE_POOLER", "session"),
        ("JWT_ALGORITHM", "none"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "-1"),
        ("LOG_LEVEL", "LOUD"),
        ("MAX_UPLOAD_BYTES", "1e"),
        ("CORS_ALLOW_HEADERS", "x-trace, bad header"),
    ],
)
def test_a_bad_value_names_its_variable(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load(tmp_path, JWT_SECRET=STRONG, **{variable: value})


def test_pool_min_above_max_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="DATABASE_POOL_MIN"):
        load(tmp_path, JWT_SECRET=STRONG, DATABASE_POOL_MIN="20", DATABASE_POOL_MAX="5")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres.abcd:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres",
        "postgresql://postgres:pw@db.abcd.supabase.co:6543/postgres",
        "postgresql://app:pw@ep-cool-night-123456-pooler.eu-central-1.aws.neon.tech/app?sslmode=require",
    ],
)
def test_a_transaction_pooler_needs_database_pooler_transaction(tmp_path: Path, url: str) -> None:
    with pytest.raises(SettingsError, match="DATABASE_POOLER=transaction"):
        load(tmp_path, JWT_SECRET=STRONG, DATABASE_URL=url)
    assert (
        load(tmp_path, JWT_SECRET=STRONG, DATABASE_URL=url, DATABASE_POOLER="transaction").database_url == url
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres.abcd:pw@aws-0-eu-central-1.pooler.supabase.com:5432/postgres",
        "postgresql://app:pw@ep-cool-night-123456.eu-central-1.aws.neon.tech/app?sslmode=require",
    ],
)
def test_session_poolers_and_direct_hosts_take_any_pooler_setting(tmp_path: Path, url: str) -> None:
    assert load(tmp_path, JWT_SECRET=STRONG, DATABASE_URL=url).database_pooler == "none"


def test_channel_binding_in_the_url_is_refused_with_the_fix(tmp_path: Path) -> None:
    url = "postgresql://app:pw@ep-cool-night-123456.eu-central-1.aws.neon.tech/app?sslmode=require&channel_binding=require"
    with pytest.raises(SettingsError, match="remove channel_binding"):
        load(tmp_path, JWT_SECRET=STRONG, DATABASE_URL=url)


def test_lists_are_comma_separated(tmp_path: Path) -> None:
    settings = load(tmp_path, JWT_SECRET=STRONG, CORS_ORIGINS="https://a.example, https://b.example,")
    assert settings.cors_origins == ("https://a.example", "https://b.example")


def test_production_refuses_missing_or_weak_secrets(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        load(tmp_path, ENVIRONMENT="production", DATABASE_URL="postgresql://db/x")
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        load(tmp_path, ENVIRONMENT="production", DATABASE_URL="postgresql://db/x", JWT_SECRET="short")
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load(tmp_path, ENVIRONMENT="production", JWT_SECRET=STRONG)
    with pytest.raises(SettingsError, match="BETTER_AUTH_SECRET"):
        load(
            tmp_path,
            ENVIRONMENT="production",
            JWT_SECRET=STRONG,
            DATABASE_URL="postgresql://db/x",
            BETTER_AUTH_SECRET="weak",
        )
    key = {"MFA_ENCRYPTION_KEY": "k" * 32}
    with pytest.raises(SettingsError, match=r"^missing SMTP_URL"):
        load(tmp_path, ENVIRONMENT="production", JWT_SECRET=STRONG, DATABASE_URL="postgresql://db/x", **key)
    assert load(
        tmp_path,
        ENVIRONMENT="production",
        JWT_SECRET=STRONG,
        DATABASE_URL="postgresql://db/x",
        ACCOUNT_MAIL="off",
        **key,
    )
    assert load(
        tmp_path,
        ENVIRONMENT="production",
        JWT_SECRET=STRONG,
        DATABASE_URL="postgresql://db/x",
        SMTP_URL="smtp://mail.example.com:587",
        **key,
    )


def test_development_generates_a_secret_once_and_keeps_it(tmp_path: Path) -> None:
    first = load(tmp_path).jwt_secret
    assert len(first.encode()) >= 32
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o077 == 0
    assert load(tmp_path).jwt_secret == first


def test_a_short_secret_is_refused_in_development_too(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        load(tmp_path, JWT_SECRET="short")


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\nexport ACCESS_TOKEN_EXPIRE_MINUTES=45\nJWT_SECRET='" + STRONG + "'\nLOG_LEVEL=DEBUG\n"
    )
    settings = load(tmp_path, LOG_LEVEL="ERROR")
    assert settings.access_token_expire_minutes == 45
    assert settings.jwt_secret == STRONG
    assert settings.log_level == "ERROR"


def test_empty_optional_values_mean_unset(tmp_path: Path) -> None:
    settings = load(tmp_path, JWT_SECRET=STRONG, REDIS_URL="", DATABASE_URL="")
    assert settings.redis_url is None
    assert settings.database_url is None


PRODUCTION = {"ENVIRONMENT": "production", "JWT_SECRET": STRONG, "DATABASE_URL": "postgresql://db/x"}


def test_production_needs_the_two_factor_key_unless_two_factor_is_off(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^missing MFA_ENCRYPTION_KEY: .*TWO_FACTOR=off"):
        load(tmp_path, **PRODUCTION, ACCOUNT_MAIL="off")
    assert load(tmp_path, **PRODUCTION, ACCOUNT_MAIL="off", TWO_FACTOR="off").mfa_encryption_key is None
    assert load(tmp_path, **PRODUCTION, ACCOUNT_MAIL="off", MFA_ENCRYPTION_KEY="k" * 32).two_factor == "on"
    with pytest.raises(SettingsError, match="REQUIRE_MFA_FOR_ADMINS"):
        load(tmp_path, JWT_SECRET=STRONG, TWO_FACTOR="off", REQUIRE_MFA_FOR_ADMINS="true")


def test_old_two_factor_keys_are_a_comma_list_of_long_keys_beside_the_current_one(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        JWT_SECRET=STRONG,
        MFA_ENCRYPTION_KEY="n" * 32,
        MFA_ENCRYPTION_OLD_KEYS="a" * 32 + ", " + "b" * 40,
    )
    assert settings.mfa_encryption_old_keys == ("a" * 32, "b" * 40)
    with pytest.raises(SettingsError, match=r"^invalid MFA_ENCRYPTION_OLD_KEYS: key 2 is shorter"):
        load(
            tmp_path,
            JWT_SECRET=STRONG,
            MFA_ENCRYPTION_KEY="n" * 32,
            MFA_ENCRYPTION_OLD_KEYS="a" * 32 + ",short",
        )
    with pytest.raises(SettingsError, match=r"^invalid MFA_ENCRYPTION_OLD_KEYS: set MFA_ENCRYPTION_KEY"):
        load(tmp_path, JWT_SECRET=STRONG, MFA_ENCRYPTION_OLD_KEYS="a" * 32)


def test_two_factor_keys_can_be_read_from_files(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("n" * 32 + "\n")
    (tmp_path / "old").write_text("a" * 32 + "," + "b" * 32 + "\n")
    settings = load(
        tmp_path,
        JWT_SECRET=STRONG,
        MFA_ENCRYPTION_KEY_FILE=str(tmp_path / "key"),
        MFA_ENCRYPTION_OLD_KEYS_FILE=str(tmp_path / "old"),
    )
    assert settings.mfa_encryption_key == "n" * 32
    assert settings.mfa_encryption_old_keys == ("a" * 32, "b" * 32)
    with pytest.raises(SettingsError, match=r"MFA_ENCRYPTION_KEY_FILE.*MFA_ENCRYPTION_KEY is set too"):
        load(
            tmp_path,
            JWT_SECRET=STRONG,
            MFA_ENCRYPTION_KEY="n" * 32,
            MFA_ENCRYPTION_KEY_FILE=str(tmp_path / "key"),
        )
