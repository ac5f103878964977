"""The Litestar internals service/compat/litestar.py uses still exist and still do what the
service relies on."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Litestar, Request, Response, get, post
from litestar.config.cors import CORSConfig
from litestar.exceptions import NotAuthorizedException
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from litestar.types import ASGIApp, Receive, Scope, Send

from service.compat.litestar import (
    StructSchemaPlugin,
    cached_form,
    cors_only_with_origin,
    replace_handler_function,
    routed,
    without_before_request,
)


def test_the_struct_schema_plugin_can_still_be_extended() -> None:
    assert callable(StructSchemaPlugin.to_openapi_schema)
    assert callable(StructSchemaPlugin.is_plugin_supported_field)


async def test_a_replaced_handler_function_is_what_the_route_calls() -> None:
    @get("/thing", sync_to_thread=False)
    def read_thing() -> None:
        return None

    @post("/thing", sync_to_thread=False)
    def make_thing() -> None:
        return None

    app = Litestar([read_thing, make_thing])
    for route in app.routes:
        if isinstance(route, HTTPRoute) and "OPTIONS" in route.route_handler_map:
            handler, _ = route.route_handler_map["OPTIONS"]
            replace_handler_function(
                handler, lambda scope: Response(None, status_code=204, headers={"Allow": "every one"})
            )
    async with AsyncTestClient(app) as client:
        response = await client.options("/thing")
    assert response.status_code == 204
    assert response.headers["allow"] == "every one"


async def test_a_generated_options_handler_inherits_its_controllers_hook_until_it_is_removed() -> None:
    async def refuse(_: Request[Any, Any, Any]) -> None:
        raise NotAuthorizedException("no token")

    class Things(Controller):
        path = "/things"
        before_request = refuse

        @get(sync_to_thread=False)
        def read(self) -> None:
            return None

        @get("/first", sync_to_thread=False)
        def read_first(self) -> None:
            return None

    app = Litestar([Things])
    async with AsyncTestClient(app) as client:
        assert (await client.options("/things")).status_code == 401  # Litestar 2's inheritance
        for route in app.routes:
            if isinstance(route, HTTPRoute) and route.path == "/things/first":
                without_before_request(route.route_handler_map["OPTIONS"][0])
        assert (await client.options("/things/first")).status_code == 204
        assert (await client.get("/things/first")).status_code == 401
        assert (await client.options("/things")).status_code == 401  # only the handler it was given


async def test_the_parsed_form_is_cached_on_the_scope_as_a_dict() -> None:
    @post("/form")
    async def read_form(request: Request[Any, Any, Any]) -> dict[str, Any]:
        await request.form()
        cached = cached_form(request.scope)
        return {
            "is_dict": isinstance(cached, dict),
            "keys": sorted(cached) if isinstance(cached, dict) else [],
        }

    async with AsyncTestClient(Litestar([read_form])) as client:
        response = await client.post("/form", files={"file": ("", b""), "text": (None, "hello")})
    assert response.json() == {"is_dict": True, "keys": ["file", "text"]}


async def test_the_cors_layer_is_the_app_handler_and_is_skipped_only_without_an_origin() -> None:
    @get("/thing", sync_to_thread=False)
    def read_thing() -> str:
        return "thing"

    app = Litestar([read_thing], cors_config=CORSConfig(allow_origins=["https://app.example"]))
    plain = app.asgi_handler
    app.asgi_handler = cors_only_with_origin(plain)
    assert app.asgi_handler is not plain, "Litestar's handler is no longer its CORS layer"
    assert app.asgi_handler.app is plain.app  # type: ignore[attr-defined]
    async with AsyncTestClient(app) as client:
        with_origin = await client.get("/thing", headers={"Origin": "https://app.example"})
        preflight = await client.options(
            "/thing", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
        )
        without = await client.get("/thing")
    assert with_origin.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert without.text == "thing"
    assert "access-control-allow-origin" not in without.headers
    without_cors = Litestar([read_thing]).asgi_handler
    assert cors_only_with_origin(without_cors) is without_cors


async def test_a_layer_put_inside_the_cors_layer_sees_requests_after_it() -> None:
    @get("/thing", sync_to_thread=False)
    def read_thing() -> str:
        return "thing"

    seen: list[str] = []

    def inner(app: ASGIApp) -> ASGIApp:
        async def layer(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(scope["path"])
            await app(scope, receive, send)

        return layer

    app = Litestar([read_thing], cors_config=CORSConfig(allow_origins=["https://app.example"]))
    app.asgi_handler = cors_only_with_origin(app.asgi_handler, inner=inner)
    async with AsyncTestClient(app) as client:
        with_origin = await client.get("/thing", headers={"Origin": "https://app.example"})
        without = await client.get("/thing/")
    assert with_origin.headers["access-control-allow-origin"] == "https://app.example"
    assert without.text == "thing"
    assert seen == ["/thing", "/thing/"]


def test_routed_is_the_routers_own_decision() -> None:
    @get("/api/{user_id:str}/things", sync_to_thread=False)
    def list_things() -> str:
        return "things"

    @get("/api/users/{user_id:uuid}", sync_to_thread=False)
    def read_user() -> None:
        return None

    app = Litestar([list_things, read_user])

    def scope(path: str, method: str = "GET", host: bytes = b"testserver") -> Any:
        return {"type": "http", "path": path, "method": method, "headers": [(b"host", host)]}

    handler, path, params, template = routed(app, scope("/api/someone/things/")) or (None,) * 4
    assert handler is not None
    assert handler.handler_name == "list_things"
    assert path == "/api/someone/things"
    assert params == {"user_id": "someone"}
    assert template == "/api/{user_id}/things"
    assert routed(app, scope("/api/someone/things", "POST")) is None  # the router's 405
    assert routed(app, scope("/api/someone/nothing")) is None  # its 404
    assert routed(app, scope("/api/someone/things", host=b"bad host")) is None  # its 400
    assert routed(app, {**scope("/api/someone/things"), "root_path": "/mounted"}) is None
