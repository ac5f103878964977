"""TaskFlow's Task and the bodies that create and change one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from asyncpg import Record

from service.http.patterns import NO_CONTROL_CHARACTERS_BUT_LINE_BREAKS, NOT_BLANK_NO_CONTROL_CHARACTERS

# PostgreSQL text cannot hold NUL, so no string reaches it with one; other control characters
# (an escape sequence, a line break in a title) are never intended and can mislead whatever shows
# them, as for `full_name`. The patterns use only syntax that Python and ECMAScript read alike,
# because OpenAPI publishes them to clients.
Title = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=NOT_BLANK_NO_CONTROL_CHARACTERS,
        description="1 to 200 characters, not only whitespace, no control characters; stored as sent.",
        examples=["Buy groceries"],
    ),
]
Description = Annotated[
    str,
    msgspec.Meta(
        max_length=10_000,
        pattern=NO_CONTROL_CHARACTERS_BUT_LINE_BREAKS,
        description="Up to 10000 characters; line breaks and tabs, but no other control characters.",
        examples=["Milk, eggs, bread"],
    ),
]


class Task(msgspec.Struct):
    id: int
    user_id: str  # the `user_id` of the path: the token's subject, whoever issued the token
    title: str
    description: str | None
    is_completed: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: Record, user_id: str) -> Task:
        """From a row of `id, title, description, is_completed, created_at, updated_at`, the
        column order every sql/tasks query returns (by position: a hot path, 4 % of a list)."""
        return cls(record[0], user_id, record[1], record[2], record[3], record[4], record[5])


class CreateTask(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    description: Description | None = None
    is_completed: bool = False


class UpdateTask(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields sent change; `"description": null` clears it, leaving it out keeps it."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    is_completed: bool | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if all(getattr(self, field) is msgspec.UNSET for field in self.__struct_fields__):
            raise ValueError("send at least one of title, description, is_completed")
