import logging
from collections.abc import Iterator

import msgspec
import pytest
from litestar import get, post
from litestar.params import JSONBody
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import Config


class Greeting(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    count: int


@post("/test/echo")
async def echo(data: JSONBody[Greeting]) -> Greeting:
    return data


@get("/test/crash")
async def crash() -> None:
    raise RuntimeError("SELECT secret FROM internals")


@pytest.fixture
def app_client(config: Config) -> Iterator[TestClient]:
    config.server.max_body_bytes = 4096
    with TestClient(create_app(config, extra_routes=[echo, crash])) as test_client:
        yield test_client


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["error"] == body["message"]
    assert body["error"]
    assert response.headers["x-request-id"]
    return body


def test_http_health(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_http_unknown_route_and_wrong_method(client: TestClient) -> None:
    assert_error(client.get("/api/nope"), 404, "NOT_FOUND")
    assert_error(client.get("/elsewhere"), 404, "NOT_FOUND")
    assert_error(client.delete("/api/health"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(
    "content",
    [
        b'{"name": ',
        b"[" * 1000 + b"]" * 1000,
        b'{"name": "a", "count": 1, "x": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    ],
)
def test_http_malformed_json_is_a_validation_error(app_client: TestClient, content: bytes) -> None:
    response = app_client.post(
        "/api/test/echo", content=content, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a"}, "count"),
        ({"name": "a", "count": "x"}, "count"),
        ({"name": "a", "count": 1, "extra": 1}, "extra"),
    ],
)
def test_http_validation_error_names_the_field(app_client: TestClient, body: dict, field: str) -> None:
    body = assert_error(app_client.post("/api/test/echo", json=body), 400, "VALIDATION_ERROR")
    assert field in body["message"]


def test_http_oversized_body_is_413(app_client: TestClient) -> None:
    response = app_client.post("/api/test/echo", json={"name": "x" * 5000, "count": 1})
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_http_crash_is_500_without_internals_and_logged_with_request_id(
    app_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="telentir_box.http"):
        response = app_client.get("/api/test/crash")
    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert "SELECT" not in response.text and "Traceback" not in response.text
    assert body["message"] == "Internal server error"
    logged = [r for r in caplog.records if r.name == "telentir_box.http"]
    assert logged and logged[0].request_id == response.headers["x-request-id"]


def test_http_openapi_schema_is_valid(client: TestClient) -> None:
    from openapi_spec_validator import validate

    schema = client.get("/api/schema/openapi.json").json()
    validate(schema)
    assert "/api/health" in schema["paths"]
    for path in ("/api/events", "/api/events/{channel}"):
        assert list(schema["paths"][path]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]


def test_http_cors_defaults_to_same_origin(client: TestClient) -> None:
    response = client.get("/api/health", headers={"origin": "http://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_http_cors_allows_configured_origin(config: Config) -> None:
    config.server.cors_origins = ["http://localhost:5173"]
    with TestClient(create_app(config)) as test_client:
        response = test_client.options(
            "/api/health",
            headers={"origin": "http://localhost:5173", "access-control-request-method": "GET"},
        )
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
