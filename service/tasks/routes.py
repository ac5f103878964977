"""TaskFlow's routes: a user's own tasks under /api/{user_id}/tasks."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, PathParameter, QueryParameter

from service.db.sql import BIGINT_MAX
from service.http.conditional import (
    ETAG_HEADER,
    NOT_MODIFIED_RESPONSE,
    ConditionalGet,
    EncodedAnswer,
    IfMatch,
    digest_tag,
    required_versions,
    row_tag,
    stale,
    tagged_json_pairs,
    with_tag,
)
from service.http.errors import require_json_body
from service.http.openapi import BEARER_SECURITY, DocumentedHeader, problem_responses
from service.security.auth import authenticated_caller
from service.security.guards import access, requires_own_user_id
from service.tasks import queries
from service.tasks.models import CreateTask, Task, UpdateTask

MAX_OFFSET = 100_000
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
LIST_OPERATION_ID = "listTasks"
# What the task list's fast path (service/tasks/fast_list.py) met while querying, for this route
# to raise in its place: the same exception, answered by the same exception handlers.
FAST_PATH_FAILURE_KEY = "task_list_failure"
_encode = msgspec.json.Encoder().encode
# What a path keeps as it is in a URL: RFC 3986's pchar and "/"; the rest (a provider subject's
# non-ASCII letters, spaces, quotes, "%") is percent-encoded as UTF-8, so a header can carry it.
_PATH_SAFE = "/:@!$&'()*+,;=~"


def url_path(path: str) -> str:
    """A decoded ASGI path as it is written in a URL (a Link or Location header)."""
    return quote(path, safe=_PATH_SAFE)


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


def _next_link(path: str, completed: bool | None, limit: int, offset: int) -> str:
    # Written out rather than urlencode()d: every value is "true", "false" or digits, which
    # urlencode leaves as they are (a page with a next link: 11 us to 7 us for list_answer, python -m timeit).
    query = "" if completed is None else ("completed=true&" if completed else "completed=false&")
    return f'<{url_path(path)}?{query}limit={limit}&offset={offset + limit}>; rel="next"'


def list_answer(
    scope: Any, tasks: list[Task], total: int, completed: bool | None, limit: int, offset: int
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The task list's status, header pairs and body: the route's and its fast path's."""
    body = _encode(tasks)
    count = str(total).encode()
    # Header pairs as bytes from the start, not a dict of str lowercased and encoded afterwards.
    headers = [(b"x-total-count", count)]
    if offset + limit < total:
        headers.append((b"link", _next_link(scope["path"], completed, limit, offset).encode("latin-1")))
    # Encoded here rather than by Litestar, so the tag is a digest of the very bytes sent.
    return tagged_json_pairs(scope, digest_tag(body, count), body, headers)


class TaskController(Controller):
    path = "/{user_id:str}/tasks"
    tags = ["tasks"]
    # Litestar unbinds a function set here; the closest before_request wins: see the JSON routes.
    before_request = access(requires_own_user_id)  # type: ignore[assignment]
    security = BEARER_SECURITY

    @get(
        "/",
        operation_id=LIST_OPERATION_ID,
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
            ETAG_HEADER,
        ],
        responses={**NOT_MODIFIED_RESPONSE, **problem_responses(400, 401, 403)},
        operation_class=ConditionalGet,
    )
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        completed: Annotated[
            bool | None, QueryParameter(description="Only completed (true) or only open (false) tasks.")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Page size.")] = DEFAULT_LIMIT,
        offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET, description="Tasks to skip.")] = 0,
    ) -> Response[list[Task]]:
        caller = authenticated_caller(request)
        failure: Exception | None = request.scope.get(FAST_PATH_FAILURE_KEY)  # type: ignore[call-overload,assignment]
        if failure is not None:
            raise failure
        tasks, total = await queries.list_tasks(
            request.app.state.pool, caller.id, caller.subject, completed, limit, offset
        )
        return EncodedAnswer(*list_answer(request.scope, tasks, total, completed, limit, offset))  # type: ignore[return-value]

    @post(
        "/",
        operation_id="createTask",
        summary="Create a task",
        before_request=access(requires_own_user_id, require_json_body),
        response_headers=[ETAG_HEADER],
        responses=problem_responses(400, 401, 403, 413, 415),
    )
    async def create_task(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CreateTask],
    ) -> Response[Task]:
        caller = authenticated_caller(request)
        created = await queries.create_task(
            request.app.state.pool, caller.id, caller.subject, data.title, data.description, data.is_completed
        )
        location = f"{url_path(request.url.path.rstrip('/'))}/{created.task.id}"
        return Response(
            created.task, status_code=201, headers={"Location": location, "ETag": row_tag(created.version)}
        )

    @get(
        "/{task_id:int}",
        operation_id="getTask",
        summary="Get one of the caller's tasks",
        response_headers=[ETAG_HEADER],
        responses={**NOT_MODIFIED_RESPONSE, **problem_responses(400, 401, 403, 404)},
        operation_class=ConditionalGet,
    )
    async def get_task(self, request: Request[Any, Any, Any], task_id: TaskId) -> Response[Task]:
        caller = authenticated_caller(request)
        found = await queries.get_task(request.app.state.pool, caller.id, caller.subject, task_id)
        if found is None:
            raise NotFoundException("task not found")
        return with_tag(request, row_tag(found.version), found.task)

    @patch(
        "/{task_id:int}",
        operation_id="updateTask",
        summary="Change some fields of a task",
        description=(
            "Fields left out keep their value; `description: null` clears the description. "
            "With If-Match, only if the task is still at that ETag (else 412)."
        ),
        before_request=access(requires_own_user_id, require_json_body),
        response_headers=[ETAG_HEADER],
        responses=problem_responses(400, 401, 403, 404, 412, 413, 415),
    )
    async def update_task(
        self,
        request: Request[Any, Any, Any],
        task_id: TaskId,
        data: JSONBody[UpdateTask],
        if_match: IfMatch = None,
    ) -> Response[Task]:
        caller = authenticated_caller(request)
        versions = required_versions(if_match)
        pool = request.app.state.pool
        updated = await queries.update_task(pool, caller.id, caller.subject, task_id, data, versions)
        if updated is None:
            raise await _missing_or_stale(pool, task_id, caller.id, if_match)
        return Response(updated.task, headers={"ETag": row_tag(updated.version)})

    @delete(
        "/{task_id:int}",
        operation_id="deleteTask",
        summary="Delete a task",
        description="With If-Match, only if the task is still at that ETag (else 412).",
        responses=problem_responses(400, 401, 403, 404, 412),
    )
    async def delete_task(
        self, request: Request[Any, Any, Any], task_id: TaskId, if_match: IfMatch = None
    ) -> None:
        caller = authenticated_caller(request)
        versions = required_versions(if_match)
        pool = request.app.state.pool
        if not await queries.delete_task(pool, caller.id, task_id, versions):
            raise await _missing_or_stale(pool, task_id, caller.id, if_match)


async def _missing_or_stale(pool: Any, task_id: int, user_id: Any, if_match: str | None) -> Exception:
    """Why a conditional write changed nothing: the task is gone (404; with `If-Match: *`, 412),
    or it is at another version than If-Match named (412)."""
    exists = await queries.task_exists(pool, user_id, task_id)
    if exists or (if_match is not None and if_match.strip() == "*"):
        return stale()
    return NotFoundException("task not found")
