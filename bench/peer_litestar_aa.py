"""The Litestar peer: the task list the litestar-fullstack way. Not part of the service.

Litestar with advanced-alchemy's SQLAlchemy plugin (async engine on asyncpg, a session per
request closed by its before-send handler), a repository service per model created by
`create_service_provider`, and Litestar's `JWTAuth` middleware whose `retrieve_user_handler`
loads the user through the users service and checks it is active (litestar-fullstack's
`current_user_from_token`), then `list_and_count` (one query, the total by window function) and
`to_schema` into an `OffsetPagination` of msgspec structs. The token is checked with the same
secret, algorithm, issuer, audience and required claims as ours; no caller or token cache, as in
the template, so two queries a request. Its packages are in the `bench` dependency group:
`uv sync --group bench` first.

Run: DATABASE_URL=... JWT_SECRET=... uvicorn bench.peer_litestar_aa:app --loop uvloop --http httptools
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from advanced_alchemy.extensions.litestar import (
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
    SQLAlchemyPlugin,
    filters,
    providers,
    repository,
    service,
)
from litestar import Controller, Litestar, Request, get
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import PermissionDeniedException
from litestar.params import Dependency, QueryParameter
from litestar.security.jwt import JWTAuth, Token
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.security.tokens import AUDIENCE, ISSUER
from service.server.lifecycle import tune_garbage_collection


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


class TaskOut(msgspec.Struct):
    id: int
    user_id: uuid.UUID
    title: str
    description: str | None
    is_completed: bool
    created_at: datetime
    updated_at: datetime


class UserService(service.SQLAlchemyAsyncRepositoryService[UserRow]):
    class Repo(repository.SQLAlchemyAsyncRepository[UserRow]):
        model_type = UserRow

    repository_type = Repo


class TaskService(service.SQLAlchemyAsyncRepositoryService[TaskRow]):
    class Repo(repository.SQLAlchemyAsyncRepository[TaskRow]):
        model_type = TaskRow

    repository_type = Repo


alchemy = SQLAlchemyAsyncConfig(
    connection_string=os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+asyncpg://", 1),
    session_config=AsyncSessionConfig(expire_on_commit=False),
    engine_config=EngineConfig(pool_size=10, max_overflow=0),  # the service's DATABASE_POOL_MAX
    before_send_handler="autocommit",
    create_all=False,
)
provide_users_service = providers.create_service_provider(UserService)
provide_tasks_service = providers.create_service_provider(TaskService)


async def current_user_from_token(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> UserRow | None:
    """litestar-fullstack's retrieve_user_handler: the user behind the token, if active."""
    users = await anext(
        provide_users_service(alchemy.provide_session(connection.app.state, connection.scope))
    )
    user = await users.get_one_or_none(id=uuid.UUID(token.sub))
    return user if user and user.is_active else None


jwt_auth = JWTAuth[UserRow, Token](
    retrieve_user_handler=current_user_from_token,
    token_secret=os.environ["JWT_SECRET"],
    algorithm="HS256",
    accepted_issuers=[ISSUER],
    accepted_audiences=[AUDIENCE],
    require_claims=["exp", "iat", "sub", "jti", "iss", "aud"],
)


class TaskController(Controller):
    path = "/api/{user_id:str}/tasks"
    dependencies = {"tasks_service": Provide(provide_tasks_service)}

    @get("/")
    async def list_tasks(
        self,
        request: Request[UserRow, Token, Any],
        tasks_service: Annotated[TaskService, Dependency(skip_validation=True)],
        user_id: str,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> service.OffsetPagination[TaskOut]:
        if str(request.user.id) != user_id:
            raise PermissionDeniedException("not your tasks")
        page = [
            filters.LimitOffset(limit=limit, offset=offset),
            filters.OrderBy(field_name="created_at", sort_order="desc"),
        ]
        results, total = await tasks_service.list_and_count(*page, TaskRow.user_id == request.user.id)
        return tasks_service.to_schema(results, total, filters=page, schema_type=TaskOut)


app = Litestar(
    [TaskController],
    plugins=[SQLAlchemyPlugin(config=alchemy)],
    on_app_init=[jwt_auth.on_app_init],
    on_startup=[tune_garbage_collection],  # as each worker of `service serve` does
    openapi_config=None,
)
