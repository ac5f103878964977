"""`service create-admin` as an operator runs it: a real process against the test database."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import psycopg
import pytest
from argon2 import PasswordHasher

from service.cli import main
from service.settings import PROJECT_ROOT
from tests.conftest import TEST_JWT_SECRET, make_user
from tests.users.test_users import add_refresh_token, live_refresh_tokens

PASSWORD = "correct horse battery staple"


def create_admin(
    database_url: str, tmp_path: Path, *args: str, password: str | None = PASSWORD
) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "DATA_DIR": str(tmp_path),
        "ENVIRONMENT": "test",
        "ARGON2_MEMORY_KIB": "8192",
        "ARGON2_TIME_COST": "1",
    }
    environ.pop("SERVICE_ADMIN_PASSWORD", None)
    if password is not None:
        environ["SERVICE_ADMIN_PASSWORD"] = password
    return subprocess.run(
        ["uv", "run", "--project", str(PROJECT_ROOT), "service", "create-admin", *args],
        env=environ,
        cwd=tmp_path,  # away from any developer's .env
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def actions(db: asyncpg.Connection) -> list[tuple[str, dict[str, object]]]:
    records = await db.fetch("SELECT action, details, actor_id FROM audit_events ORDER BY id")
    assert all(record["actor_id"] is None for record in records)
    return [(record["action"], json.loads(record["details"])) for record in records]


async def test_creates_the_first_admin_then_leaves_it_alone(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    result = create_admin(database_url, tmp_path, "Root@Example.com")
    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr

    row = await db.fetchrow("SELECT * FROM users WHERE email = 'root@example.com'")
    assert (row["role"], row["is_active"], row["provider"]) == ("admin", True, "local")
    assert row["password_hash"].startswith("$argon2id$")
    assert PasswordHasher().verify(row["password_hash"], PASSWORD)
    assert await actions(db) == [
        ("user.admin_created", {"email": "root@example.com", "source": "cli"}),
    ]

    again = create_admin(database_url, tmp_path, "root@example.com", password=None)
    assert again.returncode == 0, again.stderr
    assert "already" in again.stdout
    assert len(await actions(db)) == 1


async def test_an_account_someone_registered_is_not_promoted_without_promote_existing(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    # The documented container flow: an attacker registered the operator's email first.
    user_id = await make_user(db, "ops@example.com")
    await db.execute("UPDATE users SET password_hash = 'the-attackers-hash' WHERE id = $1", user_id)

    refused = create_admin(database_url, tmp_path, "ops@example.com")
    assert refused.returncode == 2
    assert "--promote-existing" in refused.stderr
    assert "already exists" in refused.stderr
    assert PASSWORD not in refused.stdout + refused.stderr
    row = await db.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
    assert (row["role"], row["password_hash"]) == ("user", "the-attackers-hash")
    assert await actions(db) == []


async def test_promotes_and_reactivates_an_existing_account_keeping_its_password(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    user_id = await make_user(db, "member@example.com")
    await db.execute(
        "UPDATE users SET password_hash = 'their-own-hash', is_active = false WHERE id = $1", user_id
    )
    await add_refresh_token(db, user_id)

    result = create_admin(database_url, tmp_path, "member@example.com", "--promote-existing")
    assert result.returncode == 0, result.stderr
    # SERVICE_ADMIN_PASSWORD was set, and the operator is told it was not used.
    assert "password was left unchanged" in result.stdout
    assert "--reset-password" in result.stdout
    row = await db.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
    assert (row["role"], row["is_active"], row["password_hash"]) == ("admin", True, "their-own-hash")
    assert await live_refresh_tokens(db, user_id) == 1
    assert [action for action, _ in await actions(db)] == ["user.promoted", "user.reactivated"]

    reset = create_admin(database_url, tmp_path, "member@example.com", "--reset-password")
    assert reset.returncode == 0, reset.stderr
    assert "new password" in reset.stdout
    row = await db.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
    assert PasswordHasher().verify(row["password_hash"], PASSWORD)
    assert await live_refresh_tokens(db, user_id) == 0
    last_action, _ = (await actions(db))[-1]
    assert last_action == "user.password_reset"


@pytest.mark.parametrize(
    ("argv", "password", "message"),
    [
        (["root@example.com"], "hunter2", "8 to 128 characters"),
        (["root@example.com"], "x" * 129, "8 to 128 characters"),
        (["root@example.com"], None, "SERVICE_ADMIN_PASSWORD"),
        (["root"], PASSWORD, "not an email address"),
    ],
)
def test_refuses_bad_input_without_echoing_the_password(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    password: str | None,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal: nobody to ask
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("JWT_SECRET", TEST_JWT_SECRET)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    if password is None:
        monkeypatch.delenv("SERVICE_ADMIN_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("SERVICE_ADMIN_PASSWORD", password)

    assert main(["create-admin", *argv]) == 2
    out, err = capsys.readouterr()
    assert message in err
    if password:
        assert password not in out + err
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM users WHERE email LIKE 'root%'").fetchone() == (0,)
