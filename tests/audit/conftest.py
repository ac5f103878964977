"""The accounts of tests/users, for the audit tests."""

from tests.users.conftest import admin, user

__all__ = ["admin", "user"]
