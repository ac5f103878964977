"""docs/clients.md's Python example, run by tests/openapi/test_clients.py against a served service
with the client openapi-python-client generates (SERVICE_URL, SERVICE_EMAIL, SERVICE_PASSWORD)."""

import os

from service_api_client import AuthenticatedClient, Client
from service_api_client.api.auth import get_me, login
from service_api_client.api.tasks import create_task, list_tasks
from service_api_client.models import CreateTask, LoginBody, Me, Token

base_url = os.environ.get("SERVICE_URL", "http://127.0.0.1:8000")
email, password = os.environ["SERVICE_EMAIL"], os.environ["SERVICE_PASSWORD"]

token = login.sync(client=Client(base_url=base_url), body=LoginBody(username=email, password=password))
if not isinstance(token, Token):  # a Problem (its `detail` says why), or a two-factor challenge
    raise SystemExit(f"sign-in failed: {getattr(token, 'detail', token)}")

with AuthenticatedClient(base_url=base_url, token=token.access_token) as client:
    me = get_me.sync(client=client)
    assert isinstance(me, Me)
    create_task.sync(str(me.id), client=client, body=CreateTask(title="Buy groceries"))
    tasks = list_tasks.sync(str(me.id), client=client, completed=False)
    assert isinstance(tasks, list)
    for task in tasks:
        print(task.id, task.title)
