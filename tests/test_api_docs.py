"""The API docs work offline: /api/schema loads only files the box itself serves
(Swagger UI from the installed package), under a CSP that allows only its origin."""

from __future__ import annotations

import re
from pathlib import Path

from litestar.testing import TestClient
from swagger_ui_bundle import swagger_ui_path

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


def referenced_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


def test_docs_page_loads_only_same_origin_assets(client: TestClient) -> None:
    page = client.get("/api/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = referenced_urls(page.text)
    assert urls, page.text
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url  # a path on the box itself
        asset = client.get(url)
        assert asset.status_code == 200, url
        expected = CONTENT_TYPES[Path(url).suffix]
        assert asset.headers["content-type"].split(";")[0] == expected, url
    assert {Path(url).name for url in urls} >= {"swagger-ui-bundle.js", "swagger-ui.css"}


def test_docs_assets_are_the_installed_package_files(client: TestClient) -> None:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        served = client.get(f"/api/schema/assets/{name}").content
        assert served == (Path(swagger_ui_path) / name).read_bytes()
    assert client.get("/api/schema/assets/index.html").status_code == 404


def test_docs_start_script_loads_the_schema_from_the_box(client: TestClient) -> None:
    script = client.get("/api/schema/assets/start.js").text
    schema_url = re.search(r'url:\s*"([^"]+)"', script)
    assert schema_url and schema_url.group(1).startswith("/")
    assert client.get(schema_url.group(1)).json()["openapi"].startswith("3.")
    assert "validatorUrl: null" in script  # no call to validator.swagger.io


def test_docs_csp_allows_only_the_box_origin(client: TestClient) -> None:
    csp = client.get("/api/schema").headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert set(directives["img-src"].split()) == {"'self'", "data:"}  # the icons inlined in the CSS
    assert "http" not in csp and "*" not in csp and "unsafe" not in csp
