"""The peer: the task list as a best-practice FastAPI app would write it. Not part of the service.

Async SQLAlchemy 2 (asyncpg driver, one engine, a session per request), pydantic response
models, and the usual `get_current_user` dependency: the bearer token decoded with pyjwt (same
secret, algorithm and required claims as ours), then the user loaded and checked active, then
one page of the user's tasks with its total. The common pattern has no caller cache, so that is
two queries a request against the service's one once warm. Its dependencies live in the
`bench` dependency group: `uv sync --group bench` before running it.

Run: DATABASE_URL=... JWT_SECRET=... uvicorn bench.peer_fastapi:app --loop uvloop --http httptools
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, Header, HTTPException, Path
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.security.tokens import AUDIENCE, ISSUER

engine = create_async_engine(
    os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+asyncpg://", 1),
    pool_size=10,  # the service's DATABASE_POOL_MAX
    max_overflow=0,
)
sessions = async_sessionmaker(engine, expire_on_commit=False)
JWT_SECRET = os.environ["JWT_SECRET"]


class Base(DeclarativeBase):
    pass


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str | None]
    role: Mapped[str]
    is_active: Mapped[bool]


class TaskRow(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID]
    title: Mapped[str]
    description: Mapped[str | None]
    is_completed: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TaskOut(BaseModel):
    id: int
    user_id: str
    title: str
    description: str | None
    is_completed: bool
    created_at: datetime
    updated_at: datetime


async def get_session() -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session


async def get_current_user(
    session: Annotated[AsyncSession, Depends(get_session)], authorization: Annotated[str, Header()] = ""
) -> UserRow:
    try:
        claims = jwt.decode(
            authorization.removeprefix("Bearer "),
            JWT_SECRET,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
        )
    except jwt.PyJWTError:
        raise HTTPException(401, "invalid token") from None
    user = await session.get(UserRow, uuid.UUID(claims["sub"]))
    if user is None or not user.is_active:
        raise HTTPException(401, "account is not active")
    return user


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/api/{user_id}/tasks", response_model=list[TaskOut])
async def list_tasks(
    user_id: Annotated[str, Path()],
    user: Annotated[UserRow, Depends(get_current_user)],
    session: Annotated[AsyncSession, Depends(get_session)],
    limit: int = 50,
    offset: int = 0,
) -> list[TaskOut]:
    if str(user.id) != user_id:
        raise HTTPException(403, "not your tasks")
    rows = await session.execute(
        select(TaskRow, func.count().over().label("total"))
        .where(TaskRow.user_id == user.id)
        .order_by(TaskRow.created_at.desc(), TaskRow.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [
        TaskOut(
            id=task.id,
            user_id=user_id,
            title=task.title,
            description=task.description,
            is_completed=task.is_completed,
            created_at=task.created_at,
            updated_at=task.updated_at,
        )
        for task, _total in rows
    ]
