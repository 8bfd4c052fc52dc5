"""What the OpenAPI schema promises on every operation, checked on the schema itself
(the live contract run is tests/test_openapi_contract.py), and OPTIONS answers."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

METHODS = {"get", "put", "post", "patch", "delete"}
ERROR_BODIES = {"#/components/schemas/ErrorBody", "#/components/schemas/AuthErrorBody"}


@pytest.fixture
def schema(client: TestClient) -> dict[str, Any]:
    return client.get("/api/schema/openapi.json").json()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_every_operation_has_a_tag_a_written_summary_and_typed_answers(schema: dict[str, Any]) -> None:
    tags = {tag["name"] for tag in schema["tags"]}
    for method, path, op in operations(schema):
        assert op.get("tags") and set(op["tags"]) <= tags, (method, path)
        assert " " in op["summary"], (method, path, op["summary"])  # not Litestar's CamelCase name
        for status, response in op["responses"].items():
            content = response.get("content") or {}
            if status == "204":
                assert not content, (method, path)
            elif status.startswith("2"):
                assert content, (method, path, status)
            elif status.startswith("3"):
                assert "location" in {name.lower() for name in response["headers"]}, (method, path)
            else:
                assert next(m["schema"]["$ref"] for m in content.values()) in ERROR_BODIES, (method, path)


def test_guarded_operations_name_their_credentials_and_refusals(schema: dict[str, Any]) -> None:
    open_routes = {"/api/health", "/api/auth/login", "/api/auth/register", "/api/setup-super-admin"}
    open_routes |= {"/api/auth/password/forgot", "/api/auth/password/reset"}
    for method, path, op in operations(schema):
        # Webhooks are signed by their sender instead (a header checked by the route).
        if path in open_routes or path.startswith("/api/webhooks/"):
            assert "security" not in op, (method, path)
            continue
        schemes = {name for requirement in op["security"] for name in requirement}
        # The scheduled jobs take the cron secret, everything else a user's credentials.
        assert {"bearer", "cookie"} <= schemes or (path.startswith("/api/cron/") and schemes == {"cron"}), (
            method,
            path,
        )
        # Not the optional-auth routes, nor debug/db, which is a 404 to all but the super admin.
        if {} not in op["security"] and path != "/api/debug/db":
            assert "401" in op["responses"], (method, path)
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "cookie", "ticket", "cron"}
    store = schema["paths"]["/api/objects/{object_id}"]["get"]["responses"]["403"]["description"]
    assert "PHONE_VERIFICATION_REQUIRED" in store


def test_bodies_are_closed_and_their_errors_documented(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    for method, path, op in operations(schema):
        if "requestBody" not in op:
            continue
        assert {"400", "413", "415"} <= set(op["responses"]), (method, path)
        # JSON everywhere but the knowledge-base upload, which is multipart/form-data.
        ((media_type, media),) = op["requestBody"]["content"].items()
        assert media_type in {"application/json", "multipart/form-data"}, (method, path)
        ref = media["schema"]
        name = (ref.get("$ref") or next(r["$ref"] for r in ref["oneOf"] if "$ref" in r)).rsplit("/", 1)[-1]
        assert components[name]["additionalProperties"] is False, name


def test_field_rules_are_in_the_schema(schema: dict[str, Any]) -> None:
    register = schema["components"]["schemas"]["RegisterBody"]["properties"]
    assert register["password"]["minLength"] == 12
    assert register["phone"]["pattern"].startswith("^\\+[1-9]")
    role = schema["components"]["schemas"]["InviteBody"]["properties"]["role"]
    assert set(role["enum"]) == {"owner", "admin", "member"}
    error = schema["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "code", "message"}


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/keys/key_0000000000000000000", "DELETE, GET, OPTIONS, PATCH"),
        ("/api/objects", "GET, OPTIONS, POST, PUT"),
        ("/api/api-keys", "GET, OPTIONS, POST, PUT"),
        ("/api/auth/logout", "GET, OPTIONS, POST"),
    ],
)
def test_options_lists_exactly_the_paths_methods_without_credentials(
    client: TestClient, path: str, allow: str
) -> None:
    response = client.options(path)
    assert response.status_code == 204
    assert response.headers["allow"] == allow
    assert response.headers["x-request-id"]


def test_options_on_an_unknown_path_is_404(client: TestClient) -> None:
    assert client.options("/api/nope").status_code == 404
