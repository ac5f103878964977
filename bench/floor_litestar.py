"""The framework floor: the floor's work (bench/floor.py) as one plain Litestar route.

The same token check, one task-list query on one pooled connection and encoding as the bare ASGI floor, declared
as a Litestar controller with the task list's query parameters and pagination headers, and
nothing else: no middleware, no CORS, no rate limit, no access log, no metrics, no OpenAPI. The
service's task list over this shows what our own layers cost; this over the bare floor shows
what Litestar's request handling costs. Not part of the service.

Run: DATABASE_URL=... JWT_SECRET=... uvicorn bench.floor_litestar:app --loop uvloop --http httptools
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from litestar import Controller, Litestar, Request, Response, get
from litestar.exceptions import NotAuthorizedException
from litestar.params import QueryParameter

from service.db.pool import create_pool
from service.db.sql import load_sql
from service.security.tokens import InvalidToken
from service.security.verification import verified_token
from service.server.lifecycle import tune_garbage_collection
from service.settings import load_settings
from service.tasks.models import Task
from service.tasks.routes import MAX_OFFSET, _next_link

LIST_TASKS = load_sql("tasks/list_tasks")
COUNT_TASKS = load_sql("tasks/count_tasks")


class Tasks(Controller):
    path = "/api/{user_id:str}/tasks"

    @get("/")
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        user_id: str,
        completed: bool | None = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Response[list[Task]]:
        state = request.app.state
        try:
            verified = await verified_token(state, request.headers.get("authorization", "")[7:])
        except InvalidToken:
            raise NotAuthorizedException("invalid token") from None
        async with state.pool.acquire() as connection:
            rows = await connection.fetch(LIST_TASKS, verified.subject, completed, limit, offset)
            total = (
                rows[0]["total"]
                if rows
                else await connection.fetchval(COUNT_TASKS, verified.subject, completed)
            )
        tasks = [Task.of(row, user_id) for row in rows]
        headers = {"X-Total-Count": str(total)}
        if offset + limit < total:
            headers["Link"] = _next_link(request.scope["path"], completed, limit, offset)
        return Response(tasks, headers=headers)


@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    settings = load_settings()
    pool = await create_pool(settings, os.environ["DATABASE_URL"])
    app.state.update(settings=settings, http=None, pool=pool)
    try:
        yield
    finally:
        await pool.close()


app = Litestar(
    [Tasks],
    lifespan=[_lifespan],
    on_startup=[tune_garbage_collection],  # as each worker of `service serve` does
    openapi_config=None,
    logging_config=None,
)
