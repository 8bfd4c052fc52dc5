"""The API docs under /api/schema, served whole by the box so they work with no internet:
Swagger UI's files come from the installed `swagger-ui-bundle-v2` package (not copied
into this repository), and every page and file is sent under a Content-Security-Policy
that lets the page load only from the box's own origin.

- /api/schema: the Swagger UI page (/api/schema/swagger too);
- /api/schema/openapi.json: the schema;
- /api/schema/assets/<file>: the viewer's script and style sheet, and its start script."""

from __future__ import annotations

from pathlib import Path

from litestar import MediaType, Request, Response, Router, get
from litestar.datastructures import ResponseHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath
from litestar.response import File
from swagger_ui_bundle import swagger_ui_path

SCHEMA_PATH = "/api/schema"
ASSETS = f"{SCHEMA_PATH}/assets"
# Only the box's origin; `data:` images are the icons inlined in Swagger UI's CSS.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Start script, a file rather than inline so the CSP needs no 'unsafe-inline'.
# `validatorUrl: null`: Swagger UI would otherwise send the schema to validator.swagger.io.
START_SCRIPT = f"""window.ui = SwaggerUIBundle({{
  url: "{SCHEMA_PATH}/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
}});
"""
_JS = "text/javascript"  # Litestar adds the charset
_VENDOR_FILES = {"swagger-ui-bundle.js": _JS, "swagger-ui.css": "text/css"}


class OfflineSwaggerPlugin(OpenAPIRenderPlugin):
    """The Swagger UI page, pointing at the box's own copies of its files."""

    def __init__(self) -> None:
        super().__init__(path="/swagger", media_type=MediaType.HTML)

    def render(self, request: Request, openapi_schema: dict[str, object]) -> bytes:
        del request, openapi_schema  # the page loads the schema itself
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>telentir-box API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{ASSETS}/start.js"></script>
</body>
</html>
""".encode()


@get("/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def asset(name: FromPath[str]) -> Response[str] | File:
    if name == "start.js":
        return Response(START_SCRIPT, media_type=_JS)
    if name not in _VENDOR_FILES:
        raise NotFoundException()
    path = Path(swagger_ui_path) / name
    return File(path, content_disposition_type="inline", media_type=_VENDOR_FILES[name])


def docs_router() -> Router:
    """The router the OpenAPI config serves the docs on (it adds the page and schema)."""
    return Router(
        path=SCHEMA_PATH,
        route_handlers=[asset],
        include_in_schema=False,
        response_headers=[ResponseHeader(name="Content-Security-Policy", value=CSP)],
    )
