"""Settings: one Struct read from the environment (and an optional `.env`), validated at start-up."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

import msgspec
from dotenv import dotenv_values

from service.db.paths import CHECKOUT_ROOT, IS_CHECKOUT
from service.http.patterns import whole

PROJECT_ROOT = CHECKOUT_ROOT
# A checkout's development data lives at its root; an installed service's in `.data` under the
# directory it starts in (DATA_DIR says otherwise; the image sets it).
DEFAULT_DATA_DIR = PROJECT_ROOT / ".data" if IS_CHECKOUT else Path.cwd() / ".data"
MIN_SECRET_BYTES = 32
# Whoever holds METRICS_TOKEN reads the metrics; shorter tokens are guessable (item 6 of issue 23).
MIN_METRICS_TOKEN_CHARACTERS = 32

log = logging.getLogger("service.settings")

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
HeaderName = Annotated[str, msgspec.Meta(pattern=whole(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"))]
# Request headers every frontend needs; CORS_ALLOW_HEADERS adds to them, never removes.
# traceparent and tracestate: a traced frontend's context continues here (W3C Trace Context).
BROWSER_REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Request-ID",
    "traceparent",
    "tracestate",
    "If-Match",
    "If-None-Match",
)
_LOCALHOST_ORIGIN = re.compile(r"^(https?://)localhost(:\d+)?$")
# A host name (optionally with the leading dot browsers ignore): no scheme, port or path.
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
COOKIE_DOMAIN_PATTERN = whole(rf"\.?{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
# A Sentry DSN: https://PUBLIC_KEY@HOST[:PORT][/PATH]/PROJECT_ID
SENTRY_DSN_PATTERN = whole(
    r"https?://[A-Za-z0-9]+(?::[A-Za-z0-9]+)?@[A-Za-z0-9.\-\[\]:]+(?:/[A-Za-z0-9._\-]+)*/[0-9]+"
)
OtlpProtocol = Literal["http/protobuf", "grpc"]
TraceSampler = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    database_url: str | None = None
    database_pool_min: NonNegativeInt = 2
    database_pool_max: PositiveInt = 10
    database_pooler: Literal["none", "transaction"] = "none"
    # A direct or session-mode DSN for the caller cache's LISTEN connection, when DATABASE_URL
    # is a transaction pooler (where LISTEN does not work). Default: DATABASE_URL itself.
    database_listen_url: str | None = None
    # Entries per map of the caller cache (identities, users, access tokens); 0 turns it off.
    caller_cache_size: NonNegativeInt = 10_000
    environment: Literal["development", "production", "test"] = "development"
    jwt_secret: str = ""
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_expire_minutes: PositiveInt = 30
    refresh_token_expire_days: PositiveInt = 30
    cors_origins: tuple[str, ...] = (
        "http://localhost:3000",
        "http://localhost:5173",
        "http://localhost:8080",
    )
    cors_allow_headers: tuple[HeaderName, ...] = BROWSER_REQUEST_HEADERS
    ai_service_url: str = "http://localhost:8082"
    ai_service_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    max_upload_bytes: PositiveInt = 10 * 1024 * 1024
    # Per worker: scans in flight at once (also the AI service client's connections); more is 503.
    scan_max_concurrent_uploads: PositiveInt = 8
    # A scan's whole body must arrive within this (408 beyond): 10 MiB at 1 Mbit/s takes 84 s.
    scan_body_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 120.0
    better_auth_secret: str | None = None
    better_auth_url: str | None = None
    # Better Auth options that move its key set or change its claims (docs/providers.md).
    better_auth_jwks_url: str | None = None
    better_auth_issuer: str | None = None
    better_auth_audience: str | None = None
    supabase_url: str | None = None
    supabase_jwt_secret: str | None = None
    redis_url: str | None = None
    # Keys in a shared Redis start with this, so several deployments can use one server.
    redis_key_prefix: Annotated[str, msgspec.Meta(pattern=whole(r"[A-Za-z0-9_.:-]{1,64}"))] = "service"
    rate_limit_per_minute: PositiveInt = 600
    auth_rate_limit_per_minute: PositiveInt = 20
    login_max_failures: PositiveInt = 5
    login_lockout_minutes: PositiveInt = 15
    # off: no two-factor enrolment (accounts already enrolled still need their code), and
    # production may start without MFA_ENCRYPTION_KEY.
    two_factor: Literal["on", "off"] = "on"
    # Encrypts two-factor secrets at rest (>= 32 bytes); required in production unless
    # TWO_FACTOR=off; development and tests derive a key from JWT_SECRET.
    mfa_encryption_key: str | None = None
    # Earlier keys, comma-separated: they still decrypt, MFA_ENCRYPTION_KEY encrypts; `service
    # mfa-rotate` re-encrypts every secret under MFA_ENCRYPTION_KEY, after which they can go.
    mfa_encryption_old_keys: tuple[str, ...] = ()
    # true: an administrator of a local account without two-factor gets 403 everywhere except
    # the enrolment routes, /api/auth/me and logout.
    require_mfa_for_admins: bool = False
    trusted_proxies: tuple[str, ...] = ()
    metrics_enabled: bool = True
    metrics_token: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    argon2_memory_kib: Annotated[int, msgspec.Meta(ge=8192)] = 19456
    argon2_time_cost: PositiveInt = 2
    argon2_parallelism: PositiveInt = 1
    # Hashes at once per worker; unset: one per CPU the process may use (its affinity).
    argon2_threads: Annotated[int, msgspec.Meta(ge=1, le=1024)] | None = None
    # strict: 8-128 characters and not a common password. lenient (development default): 1-128,
    # so the sample password `test123` registers against a local server.
    password_policy: Literal["strict", "lenient"] | None = None
    data_dir: str = str(DEFAULT_DATA_DIR)
    shutdown_drain_seconds: Annotated[float, msgspec.Meta(ge=0, le=300)] | None = None
    # Per worker, enforced by service.http.protocol before a request reaches the app.
    http_max_header_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1024 * 1024)] = 32 * 1024
    http_header_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    http_max_connections: PositiveInt = 2048
    # on: login and refresh also set the refresh token as an HttpOnly cookie (browser frontends).
    auth_cookies: Literal["off", "on"] = "off"
    auth_cookie_samesite: Literal["strict", "lax", "none"] = "strict"
    auth_cookie_domain: Annotated[str, msgspec.Meta(pattern=COOKIE_DOMAIN_PATTERN)] | None = None
    audit_retention_days: NonNegativeInt = 365  # 0 keeps audit events forever
    scan_retention_days: NonNegativeInt | None = None  # unset (or 0) keeps scans forever
    mail_retention_days: NonNegativeInt = 30  # sent mails; 0 keeps them forever
    job_log_retention_days: NonNegativeInt = 30  # pgqueuer_log rows; 0 keeps them forever
    prune_interval_minutes: NonNegativeInt = 60  # 0: the server never prunes on its own
    # OpenTelemetry's standard variables (service.observability.tracing): traces are exported only when an
    # endpoint is set.
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_exporter_otlp_protocol: OtlpProtocol = "http/protobuf"
    otel_exporter_otlp_traces_protocol: OtlpProtocol | None = None
    otel_service_name: str | None = None
    otel_traces_sampler: TraceSampler = "parentbased_always_on"
    otel_traces_sampler_arg: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    otel_sdk_disabled: bool = False
    # Mail (service.mail): smtp:// (STARTTLS when the server offers it; required on port 587) or
    # smtps:// (implicit TLS). Unset: development writes mails to the log; production refuses to
    # start while ACCOUNT_MAIL is on.
    smtp_url: str | None = None
    mail_from: Annotated[
        str, msgspec.Meta(min_length=3, max_length=320, pattern=whole(r"[^\s<>@]+@[^\s<>@]+"))
    ] = "no-reply@localhost"
    frontend_url: str | None = None  # base of the links in mails; unset: the first CORS_ORIGINS entry
    # on: registration sends a verification mail and password reset works (both need mail).
    account_mail: Literal["on", "off"] = "on"
    require_email_verification: bool = False
    # on: every `service serve` worker also delivers mail; off: only `service worker` processes do.
    mail_worker: Literal["on", "off"] = "on"
    # Delivery attempts before a mail is kept as dead (backoff 2 s, 4 s, ... capped at 10 minutes).
    mail_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=30)] = 10
    smtp_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 20.0

    @property
    def mail_links_base(self) -> str:
        """FRONTEND_URL, else the first CORS_ORIGINS entry, without a trailing slash."""
        base = self.frontend_url or next((o for o in self.cors_origins if o != "*"), "http://localhost:3000")
        return base.rstrip("/")

    # service.http.compression: answers of at least this many bytes are gzipped; 0 never (a proxy does it).
    compression_min_bytes: NonNegativeInt = 1024
    # Error tracking (service.observability.error_tracking): unset, no Sentry code is even imported.
    sentry_dsn: Annotated[str, msgspec.Meta(pattern=SENTRY_DSN_PATTERN)] | None = None

    @property
    def tracing_enabled(self) -> bool:
        endpoint = self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint
        return bool(endpoint) and not self.otel_sdk_disabled

    @property
    def otlp_traces_protocol(self) -> OtlpProtocol:
        return self.otel_exporter_otlp_traces_protocol or self.otel_exporter_otlp_protocol

    @property
    def drain_seconds(self) -> float:
        """How long readiness reports 503 before shutdown starts: 5 s in production unless set."""
        if self.shutdown_drain_seconds is not None:
            return self.shutdown_drain_seconds
        return 5.0 if self.is_production else 0.0

    @property
    def browser_origins(self) -> tuple[str, ...]:
        """CORS_ORIGINS and, in development, the 127.0.0.1 spelling of each localhost origin: a
        dev server opened as http://127.0.0.1:5173 is another origin to the browser."""
        if self.environment != "development":
            return self.cors_origins
        spelled = (_LOCALHOST_ORIGIN.sub(r"\g<1>127.0.0.1\g<2>", origin) for origin in self.cors_origins)
        return tuple(dict.fromkeys([*self.cors_origins, *spelled]))

    @property
    def browser_request_headers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*BROWSER_REQUEST_HEADERS, *self.cors_allow_headers]))

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def strict_passwords(self) -> bool:
        if self.password_policy is None:
            return self.environment != "development"
        return self.password_policy == "strict"  # noqa: S105 - a policy name


_LIST_FIELDS = {"cors_origins", "cors_allow_headers", "trusted_proxies", "mfa_encryption_old_keys"}
_OPTIONAL_FIELDS = {
    name for name, field_type in Settings.__annotations__.items() if "None" in str(field_type)
}


def read_env_file(path: Path) -> dict[str, str]:
    """A dotenv file's values, by python-dotenv's rules (the ones frontends' tooling follows too):
    `KEY=value  # comment` drops the comment, quotes are removed, escapes in double quotes are
    expanded, `${VAR}` is interpolated. A key with no `=` is left out."""
    if not path.is_file():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def load_env_file(path: Path | None = None) -> None:
    """Put `.env`'s values into os.environ, never over a variable that is already set, so that
    libraries reading the environment themselves (OpenTelemetry's OTEL_*, prometheus_client's
    PROMETHEUS_MULTIPROC_DIR, WEB_CONCURRENCY) see them too. The CLI calls it first.
    SERVICE_ADMIN_PASSWORD is left out: it is read from the real environment only, so an
    administrator's password is not left in a file (docs/operations.md)."""
    for key, value in _not_overridden(read_env_file(path or Path.cwd() / ".env"), os.environ).items():
        if key not in ENVIRONMENT_ONLY:
            os.environ.setdefault(key, value)


ENVIRONMENT_ONLY = frozenset({"SERVICE_ADMIN_PASSWORD"})


def _not_overridden(file_values: dict[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The file's values the environment leaves in force. A secret the environment sets, as NAME
    or as NAME_FILE, takes both spellings out of the file: the environment wins either way."""
    kept = {key: value for key, value in file_values.items() if key not in environ}
    for name in SECRET_SETTINGS:
        spellings = (name.upper(), f"{name.upper()}_FILE")
        if any(environ.get(spelling) for spelling in spellings):
            for spelling in spellings:
                kept.pop(spelling, None)
    return kept


# Settings that may hold a secret (a password inside a URL counts): each may instead be read
# from the file NAME_FILE names, as Docker and Kubernetes mount secrets. Names of settings that
# do not exist in this version are skipped.
SECRET_SETTINGS = (
    "database_url",
    "database_listen_url",
    "jwt_secret",
    "better_auth_secret",
    "supabase_jwt_secret",
    "mfa_encryption_key",
    "mfa_encryption_old_keys",
    "redis_url",
    "metrics_token",
    "sentry_dsn",
    "smtp_url",
)


def _secret_from_file(name: str, environ: Mapping[str, str]) -> str | None:
    """The value of NAME_FILE's file (its trailing newline stripped), or None when it is unset."""
    variable = name.upper()
    file_variable = f"{variable}_FILE"
    path = (environ.get(file_variable) or "").strip()
    if not path:
        return None
    if (environ.get(variable) or "").strip():
        raise SettingsError(f"invalid {file_variable}: {variable} is set too; set only one of them")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SettingsError(f"invalid {file_variable}: cannot read {path}: {reason}") from None


def _raw_values(environ: Mapping[str, str]) -> dict[str, object]:
    raw: dict[str, object] = {}
    for name in Settings.__struct_fields__:
        value = environ.get(name.upper())
        if name in SECRET_SETTINGS:
            value = _secret_from_file(name, environ) or value
        if value is None:
            continue
        value = value.strip()
        if name in _LIST_FIELDS:
            raw[name] = tuple(item.strip() for item in value.split(",") if item.strip())
        elif value == "" and name in _OPTIONAL_FIELDS:
            raw[name] = None
        else:
            raw[name] = value
    return raw


def load_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> Settings:
    """Build Settings from `.env` overlaid with the process environment; raise SettingsError."""
    environment = os.environ if environ is None else environ
    merged = _not_overridden(read_env_file(env_file or Path.cwd() / ".env"), environment)
    merged.update(environment)
    try:
        settings = msgspec.convert(_raw_values(merged), Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_name_the_variable(str(exc))) from None
    _check_trusted_proxies(settings)
    _check_database_url(settings)
    _check_better_auth(settings)
    _check_auth_cookies(settings)
    _check_metrics_token(settings)
    _check_trace_exporter(settings)
    settings = _check_distinct_secrets(_check_secrets(settings))
    _check_mail(settings)  # after the secrets: a missing secret is the first thing to fix
    return settings


GRPC_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.grpc"


def _check_trace_exporter(settings: Settings) -> None:
    """The gRPC exporter (grpcio, about 18 MB) is the `grpc` extra: say so at start-up."""
    if not settings.tracing_enabled or settings.otlp_traces_protocol != "grpc":
        return
    try:
        found = importlib.util.find_spec(GRPC_EXPORTER_MODULE) is not None
    except ImportError:
        found = False
    if not found:
        variable = (
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
            if settings.otel_exporter_otlp_traces_protocol
            else "OTEL_EXPORTER_OTLP_PROTOCOL"
        )
        raise SettingsError(
            f"invalid {variable}: grpc needs the gRPC exporter, which is not installed; "
            "install service[grpc] (pip install 'service[grpc]') or use http/protobuf"
        )


def _name_the_variable(message: str) -> str:
    # msgspec says "... - at `$.jwt_algorithm`"; users know the variable as JWT_ALGORITHM.
    text, _, location = message.partition(" - at `$.")
    if location:
        name = location.split("`")[0].split("[")[0].upper()
        return f"invalid {name}: {text}"
    return f"invalid settings: {text}"


def _check_trusted_proxies(settings: Settings) -> None:
    for entry in settings.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(f"invalid TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR") from None


def _check_auth_cookies(settings: Settings) -> None:
    """The refresh cookie trusts CORS_ORIGINS as its CSRF allow-list: a wildcard would trust every site.
    `null` is the origin of every sandboxed frame, `data:` page and file, whoever made it: never a
    frontend to trust, with cookies or without."""
    if any(origin.lower() == "null" for origin in settings.cors_origins):
        raise SettingsError(
            "invalid CORS_ORIGINS: null is the origin of any sandboxed or local page, "
            "not a frontend; list the frontends' origins"
        )
    if settings.auth_cookies == "on" and "*" in settings.cors_origins:
        raise SettingsError(
            "invalid CORS_ORIGINS: AUTH_COOKIES=on needs the exact origins of the frontends, not *"
        )


def _check_metrics_token(settings: Settings) -> None:
    token = settings.metrics_token
    if token is not None and len(token.strip()) < MIN_METRICS_TOKEN_CHARACTERS:
        raise SettingsError(
            f"invalid METRICS_TOKEN: must be at least {MIN_METRICS_TOKEN_CHARACTERS} characters "
            "(e.g. `openssl rand -hex 32`)"
        )


def _check_distinct_secrets(settings: Settings) -> Settings:
    """An identity provider's secret verifies its tokens only; as JWT_SECRET it would also sign
    ours, so whoever holds it (the provider, its admins) could mint an administrator's token."""
    for name in ("better_auth_secret", "supabase_jwt_secret"):
        value = getattr(settings, name)
        if value and hmac.compare_digest(value.encode(), settings.jwt_secret.encode()):
            raise SettingsError(
                f"invalid {name.upper()}: equal to JWT_SECRET; they must differ, "
                "or the provider's secret signs this service's own tokens"
            )
    return settings


def _check_mail(settings: Settings) -> None:
    if settings.smtp_url:
        try:
            parts = urlsplit(settings.smtp_url)
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise SettingsError("invalid SMTP_URL: not a URL") from None
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SettingsError("invalid SMTP_URL: must be smtp://[user:pass@]host[:port] or smtps://...")
    if settings.frontend_url and not settings.frontend_url.startswith(("http://", "https://")):
        raise SettingsError("invalid FRONTEND_URL: must start with http:// or https://")
    if settings.is_production and settings.account_mail == "on" and not settings.smtp_url:
        raise SettingsError(
            "missing SMTP_URL: production sends verification and password-reset mail "
            "(set SMTP_URL, or ACCOUNT_MAIL=off to turn those flows off)"
        )


def _transaction_pooler(host: str, port: int | None) -> str | None:
    """The provider whose transaction-mode pooler this host and port are, if they are one."""
    if port == 6543 and (host.endswith(".pooler.supabase.com") or host.endswith(".supabase.co")):
        return "Supabase's transaction pooler (port 6543)"
    if host.split(".")[0].endswith("-pooler") and host.endswith(".neon.tech"):
        return "Neon's pooled host (-pooler)"
    return None


def _check_database_url(settings: Settings) -> None:
    """Refuse, at start-up, DSNs that would otherwise fail later, under load or on first connect."""
    for variable, url in (
        ("DATABASE_URL", settings.database_url),
        ("DATABASE_LISTEN_URL", settings.database_listen_url),
    ):
        # asyncpg reads anything else as a bare database name on the local server
        # (`notaurl` connected to the database `otaurl`).
        if url and _scheme(url) not in ("postgres", "postgresql"):
            raise SettingsError(f"invalid {variable}: not a postgresql:// or postgres:// URL")
    if settings.database_listen_url:
        listen_host, listen_port = _host_and_port("DATABASE_LISTEN_URL", settings.database_listen_url)
        listen_pooler = _transaction_pooler(listen_host, listen_port)
        if listen_pooler:
            raise SettingsError(
                f"invalid DATABASE_LISTEN_URL: it points at {listen_pooler}, where LISTEN does not work; "
                "use the direct or session-mode address (Supabase: port 5432; Neon: the host without -pooler)"
            )
    if not settings.database_url:
        return
    pooler = _transaction_pooler(*_host_and_port("DATABASE_URL", settings.database_url))
    if pooler and settings.database_pooler != "transaction":
        raise SettingsError(
            f"invalid DATABASE_POOLER: DATABASE_URL points at {pooler}; set DATABASE_POOLER=transaction"
        )


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def _host_and_port(variable: str, url: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        raise SettingsError(f"invalid {variable}: not a postgresql:// URL") from None
    if "channel_binding" in parse_qs(parts.query):
        # asyncpg would send it to the server as a setting, which PostgreSQL refuses.
        raise SettingsError(
            f"invalid {variable}: remove channel_binding (asyncpg does not support it); "
            "sslmode=require keeps the connection encrypted"
        )
    return host, port


def _check_better_auth(settings: Settings) -> None:
    if settings.better_auth_url:
        try:
            parts = urlsplit(settings.better_auth_url)
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise SettingsError("invalid BETTER_AUTH_URL: not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError("invalid BETTER_AUTH_URL: must be an http:// or https:// URL")
    jwks_url = settings.better_auth_jwks_url
    if jwks_url and not jwks_url.startswith(("http://", "https://")):
        raise SettingsError("invalid BETTER_AUTH_JWKS_URL: must start with http:// or https://")
    if settings.better_auth_url:
        return
    for name in ("better_auth_jwks_url", "better_auth_issuer", "better_auth_audience"):
        if getattr(settings, name):
            raise SettingsError(f"invalid {name.upper()}: set BETTER_AUTH_URL too (Better Auth's baseURL)")


def _check_secrets(settings: Settings) -> Settings:
    if settings.database_pool_min > settings.database_pool_max:
        raise SettingsError("invalid DATABASE_POOL_MIN: larger than DATABASE_POOL_MAX")
    if not settings.ai_service_url.startswith(("http://", "https://")):
        raise SettingsError("invalid AI_SERVICE_URL: must start with http:// or https://")
    for name in ("otel_exporter_otlp_endpoint", "otel_exporter_otlp_traces_endpoint"):
        endpoint = getattr(settings, name)
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise SettingsError(f"invalid {name.upper()}: must start with http:// or https://")
    _check_mfa_keys(settings)
    for name in ("jwt_secret", "better_auth_secret", "supabase_jwt_secret"):
        value = getattr(settings, name)
        if value and len(value.encode()) < MIN_SECRET_BYTES and settings.is_production:
            raise SettingsError(f"invalid {name.upper()}: must be at least {MIN_SECRET_BYTES} bytes")
    if settings.is_production:
        if settings.password_policy == "lenient":  # noqa: S105 - a policy name
            raise SettingsError("invalid PASSWORD_POLICY: production allows only strict")
        if not settings.jwt_secret:
            raise SettingsError("missing JWT_SECRET: production needs a secret of >= 32 bytes")
        if not settings.database_url:
            raise SettingsError("missing DATABASE_URL: production does not run an embedded database")
        if settings.two_factor == "on" and not settings.mfa_encryption_key:
            raise SettingsError(
                "missing MFA_ENCRYPTION_KEY: production encrypts two-factor secrets with a key of "
                ">= 32 bytes (for example: openssl rand -base64 48); set it, or TWO_FACTOR=off to "
                "turn two-factor enrolment off"
            )
        return settings
    if settings.jwt_secret and len(settings.jwt_secret.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(f"invalid JWT_SECRET: must be at least {MIN_SECRET_BYTES} bytes")
    if not settings.jwt_secret:
        return msgspec.structs.replace(settings, jwt_secret=_development_secret(Path(settings.data_dir)))
    return settings


def mfa_key_id(key: str) -> str:
    """The id a two-factor ciphertext records of the key that made it: the first 8 hex digits of
    the key's SHA-256 (service/two_factor/secrets.py)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def _check_mfa_keys(settings: Settings) -> None:
    if settings.mfa_encryption_key and len(settings.mfa_encryption_key.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(f"invalid MFA_ENCRYPTION_KEY: must be at least {MIN_SECRET_BYTES} bytes")
    for number, key in enumerate(settings.mfa_encryption_old_keys, 1):
        if len(key.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(
                f"invalid MFA_ENCRYPTION_OLD_KEYS: key {number} is shorter than {MIN_SECRET_BYTES} bytes"
            )
    if settings.mfa_encryption_old_keys and not settings.mfa_encryption_key:
        raise SettingsError(
            "invalid MFA_ENCRYPTION_OLD_KEYS: set MFA_ENCRYPTION_KEY too, the key that encrypts"
        )
    keys = dict.fromkeys([settings.mfa_encryption_key or "", *settings.mfa_encryption_old_keys])
    ids = [mfa_key_id(key) for key in keys if key]
    if len(set(ids)) != len(ids):
        raise SettingsError(
            "invalid MFA_ENCRYPTION_OLD_KEYS: two different keys share a key id; generate another"
        )
    if settings.require_mfa_for_admins and settings.two_factor == "off":
        raise SettingsError("invalid REQUIRE_MFA_FOR_ADMINS: true needs TWO_FACTOR=on")


def _development_secret(data_dir: Path) -> str:
    """Generate a signing secret once and keep it under the data dir, so tokens survive restarts."""
    path = data_dir / "jwt_secret"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker won the race
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret)
    log.warning("JWT_SECRET is not set: generated a development secret in %s", path)
    return secret
