"""TaskFlow's routes: a user's own tasks under /api/{user_id}/tasks."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, PathParameter, QueryParameter

from service.db.sql import BIGINT_MAX
from service.http.errors import require_json_body
from service.http.openapi import BEARER_SECURITY, DocumentedHeader, problem_responses
from service.security.auth import authenticated_caller
from service.security.guards import requires_own_user_id
from service.tasks import queries
from service.tasks.models import CreateTask, Task, UpdateTask

MAX_OFFSET = 100_000

TaskId = Annotated[
    int,
    PathParameter(
        ge=1,
        le=BIGINT_MAX,
        description="The task's id.",
        # Litestar writes `le` as a float, 2**63 exactly, one more than the largest id.
        schema_extra={"maximum": BIGINT_MAX},
    ),
]


async def requires_own_user_id_and_json_body(request: Request[Any, Any, Any]) -> None:
    await requires_own_user_id(request)
    await require_json_body(request)


def _pagination_headers(
    path: str, completed: bool | None, total: int, limit: int, offset: int
) -> dict[str, str]:
    headers = {"X-Total-Count": str(total)}
    if offset + limit < total:
        query = {} if completed is None else {"completed": str(completed).lower()}
        query.update(limit=str(limit), offset=str(offset + limit))
        headers["Link"] = f'<{path}?{urlencode(query)}>; rel="next"'
    return headers


class TaskController(Controller):
    path = "/{user_id:str}/tasks"
    tags = ["tasks"]
    # Litestar unbinds a function set here; the closest before_request wins: see the JSON routes.
    before_request = requires_own_user_id  # type: ignore[assignment]
    security = BEARER_SECURITY

    @get(
        "/",
        operation_id="listTasks",
        summary="List the caller's tasks, newest first",
        response_headers=[
            DocumentedHeader(
                name="X-Total-Count",
                description="Tasks matching the filter over all pages.",
                required=True,
                schema={"type": "integer", "minimum": 0},
            ),
            DocumentedHeader(
                name="Link",
                description='`<url>; rel="next"` when another page follows.',
            ),
        ],
        responses=problem_responses(400, 401, 403),
    )
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        completed: Annotated[
            bool | None, QueryParameter(description="Only completed (true) or only open (false) tasks.")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200, description="Page size.")] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET, description="Tasks to skip.")] = 0,
    ) -> Response[list[Task]]:
        caller = authenticated_caller(request)
        tasks, total = await queries.list_tasks(
            request.app.state.pool, caller.id, caller.subject, completed, limit, offset
        )
        headers = _pagination_headers(request.scope["path"], completed, total, limit, offset)
        return Response(tasks, headers=headers)

    @post(
        "/",
        operation_id="createTask",
        summary="Create a task",
        before_request=requires_own_user_id_and_json_body,
        responses=problem_responses(400, 401, 403, 413, 415),
    )
    async def create_task(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CreateTask],
    ) -> Response[Task]:
        caller = authenticated_caller(request)
        task = await queries.create_task(
            request.app.state.pool, caller.id, caller.subject, data.title, data.description, data.is_completed
        )
        location = f"{request.url.path.rstrip('/')}/{task.id}"
        return Response(task, status_code=201, headers={"Location": location})

    @get(
        "/{task_id:int}",
        operation_id="getTask",
        summary="Get one of the caller's tasks",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def get_task(self, request: Request[Any, Any, Any], task_id: TaskId) -> Task:
        caller = authenticated_caller(request)
        task = await queries.get_task(request.app.state.pool, caller.id, caller.subject, task_id)
        if task is None:
            raise NotFoundException("task not found")
        return task

    @patch(
        "/{task_id:int}",
        operation_id="updateTask",
        summary="Change some fields of a task",
        description="Fields left out keep their value; `description: null` clears the description.",
        before_request=requires_own_user_id_and_json_body,
        responses=problem_responses(400, 401, 403, 404, 413, 415),
    )
    async def update_task(
        self, request: Request[Any, Any, Any], task_id: TaskId, data: JSONBody[UpdateTask]
    ) -> Task:
        caller = authenticated_caller(request)
        task = await queries.update_task(request.app.state.pool, caller.id, caller.subject, task_id, data)
        if task is None:
            raise NotFoundException("task not found")
        return task

    @delete(
        "/{task_id:int}",
        operation_id="deleteTask",
        summary="Delete a task",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def delete_task(self, request: Request[Any, Any, Any], task_id: TaskId) -> None:
        caller = authenticated_caller(request)
        if not await queries.delete_task(request.app.state.pool, caller.id, task_id):
            raise NotFoundException("task not found")
