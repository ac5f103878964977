"""/docs (Swagger UI 5), /redoc and /openapi.json, with every asset served from /static."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.enums import MediaType, OpenAPIMediaType
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RedocRenderPlugin,
    SwaggerRenderPlugin,
)

_FAVICON = "<link rel='icon' type='image/png' href='/static/swagger-ui/favicon-32x32.png'>"

SCHEMA_JSON = JsonRenderPlugin(path="/openapi.json")
SWAGGER = SwaggerRenderPlugin(
    path="/docs",
    js_url="/static/swagger-ui/swagger-ui-bundle.js",
    css_url="/static/swagger-ui/swagger-ui.css",
    standalone_preset_js_url="/static/swagger-ui/swagger-ui-standalone-preset.js",
    favicon=_FAVICON,
)
REDOC = RedocRenderPlugin(
    path="/redoc", js_url="/static/redoc/redoc.standalone.js", google_fonts=False, favicon=_FAVICON
)


def _render(plugin: OpenAPIRenderPlugin, request: Request[Any, Any, Any]) -> bytes:
    schema = request.app.state.get("openapi_schema")
    if schema is None:
        schema = request.app.openapi_schema.to_schema()
        request.app.state["openapi_schema"] = schema
    return plugin.render(request, schema)


class DocsController(Controller):
    include_in_schema = False

    @get("/openapi.json", media_type=OpenAPIMediaType.OPENAPI_JSON, sync_to_thread=False)
    def openapi_json(self, request: Request[Any, Any, Any]) -> bytes:
        return _render(SCHEMA_JSON, request)

    @get("/docs", media_type=MediaType.HTML, sync_to_thread=False)
    def swagger(self, request: Request[Any, Any, Any]) -> bytes:
        return _render(SWAGGER, request)

    @get("/redoc", media_type=MediaType.HTML, sync_to_thread=False)
    def redoc(self, request: Request[Any, Any, Any]) -> bytes:
        return _render(REDOC, request)
