"""The OpenAPI document describes the account routes of API.md: bodies, replies, errors and security."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NATS

from gpulab_core.contracts import operations as ops
from gpulab_core.rpc import RpcClient
from gpulab_gateway.app import create_app
from gpulab_gateway.config import Settings
from gpulab_gateway.problems import STATUS_BY_CODE

# (method, path) → (success status, body schema or None, reply schema or None, error statuses)
ROUTES: dict[tuple[str, str], tuple[str, str | None, str | None, set[str]]] = {
    ("post", "/api/v1/auth/login"): ("200", "Credentials", "LoginResult", {"401", "422", "429", "503"}),
    ("post", "/api/v1/auth/logout"): ("204", None, None, {"403", "503"}),
    ("get", "/api/v1/auth/me"): ("200", None, "User", {"401", "503"}),
    ("get", "/api/v1/auth/invites/{token}"): ("200", None, "InviteInfo", {"404", "410", "422", "503"}),
    ("post", "/api/v1/auth/invites/{token}/accept"): ("201", "AcceptInvite", "User", {"404", "410", "422", "503"}),
    ("post", "/api/v1/users/invites"): ("201", "NewInvite", "User", {"401", "403", "409", "422", "503"}),
    ("get", "/api/v1/users"): ("200", None, "UserList", {"401", "403", "422", "503"}),
    ("get", "/api/v1/users/{id}"): ("200", None, "User", {"401", "403", "404", "422", "503"}),
    ("patch", "/api/v1/users/{id}"): ("200", "UserChange", "User", {"401", "403", "404", "409", "422", "503"}),
    ("get", "/api/v1/me/ssh-keys"): ("200", None, "SshKeyList", {"401", "503"}),
    ("post", "/api/v1/me/ssh-keys"): ("201", "NewSshKey", "SshKey", {"401", "403", "409", "422", "503"}),
    ("delete", "/api/v1/me/ssh-keys/{id}"): ("204", None, None, {"401", "403", "404", "422", "503"}),
    ("get", "/api/v1/audit-log"): ("200", None, "AuditLogPage", {"401", "403", "422", "503"}),
    ("get", "/api/v1/audit-log/verify"): ("200", None, "AuditVerification", {"401", "403", "422", "503"}),
}
PUBLIC = {"/api/v1/auth/login", "/api/v1/auth/invites/{token}", "/api/v1/auth/invites/{token}/accept"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    # The document needs no running service: an unconnected client is enough to build the app.
    app: FastAPI = create_app(Settings(), RpcClient(NATS()))
    return app.openapi()


def ref(content: dict[str, Any], media_type: str) -> str:
    schema = content[media_type]["schema"]
    return str(schema["$ref"]).rsplit("/", 1)[-1]


@pytest.mark.parametrize(("method", "path"), list(ROUTES))
def test_each_account_route_is_documented_with_its_schemas_and_errors(
    doc: dict[str, Any], method: str, path: str
) -> None:
    success, body, reply, error_statuses = ROUTES[(method, path)]
    operation = doc["paths"][path][method]
    if body is None:
        assert "requestBody" not in operation
    else:
        assert operation["requestBody"]["required"] is True
        assert ref(operation["requestBody"]["content"], "application/json") == body
    responses = operation["responses"]
    assert set(responses) == {success} | error_statuses
    if reply is None:
        assert "content" not in responses[success]
    else:
        assert ref(responses[success]["content"], "application/json") == reply
    for status in error_statuses:
        assert list(responses[status]["content"]) == ["application/problem+json"], status
        assert ref(responses[status]["content"], "application/problem+json") == "Problem"
    if path in PUBLIC:
        assert "security" not in operation
    elif method == "get":
        assert operation["security"] == [{"session": []}]
    else:
        assert operation["security"] == [{"session": [], "csrf": []}], "both at once, not either"


def test_security_schemes_name_the_cookie_and_the_csrf_header(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["session"] == {**schemes["session"], "type": "apiKey", "in": "cookie", "name": "gpulab_session"}
    assert schemes["csrf"] == {**schemes["csrf"], "type": "apiKey", "in": "header", "name": "X-CSRF-Token"}


def test_schemas_carry_the_field_names_of_api_md(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    user = schemas["User"]
    assert set(user["properties"]) == {
        "id",
        "email",
        "name",
        "role",
        "status",
        "has_ssh_key",
        "created_at",
        "invite_delivery",
    }
    assert set(schemas["SshKey"]["properties"]) == {"id", "type", "fingerprint", "comment", "created_at"}
    assert set(schemas["AuditEntry"]["properties"]) == {
        "id",
        "at",
        "actor_id",
        "actor_email",
        "action",
        "target_type",
        "target_id",
        "details",
    }
    assert set(schemas["AuditVerification"]["properties"]) == {
        "valid",
        "checked",
        "first_bad_id",
        "problem",
        "next_cursor",
        "checked_at",
    }
    assert set(schemas["AuditVerification"]["required"]) == set(schemas["AuditVerification"]["properties"])
    for page in ("UserList", "SshKeyList", "AuditLogPage"):
        assert set(schemas[page]["properties"]) == {"items", "next_cursor"}
    assert set(schemas["LoginResult"]["properties"]) == {"user", "csrf_token"}
    assert set(schemas["InviteInfo"]["properties"]) == {"email", "expires_at"}
    assert {"type", "title", "status", "detail", "code"} <= set(schemas["Problem"]["required"])
    # Request bodies refuse unknown fields, and say so.
    for body in ("Credentials", "AcceptInvite", "NewInvite", "UserChange", "NewSshKey"):
        assert schemas[body]["additionalProperties"] is False, body
    assert "HTTPValidationError" not in schemas, "422 is problem+json like every other error"


def test_assignments_name_their_node_environment_and_gpus_and_say_what_the_node_reported(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assignment, gpu = schemas["Assignment"], schemas["AssignedGpu"]
    added = {"node_hostname", "environment_name"}
    assert added | {"id", "user_id", "environment_id", "node_id", "gpus", "status"} <= set(assignment["properties"])
    assert added <= set(assignment["required"])
    assert set(gpu["properties"]) == set(gpu["required"]) == {"index", "uuid", "name", "memory_mb"}
    # What the node's agent last reported for it (API.md's Assignment).
    assert {"node_state", "node_message"} <= set(assignment["required"])
    assert assignment["properties"]["node_state"]["enum"] == ["pending", "applied", "failed"]
    message = assignment["properties"]["node_message"]["anyOf"]
    assert {m["type"] for m in message} == {"string", "null"}
    for route in ("/api/v1/me/assignments", "/api/v1/assignments"):
        reply = doc["paths"][route]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert reply["$ref"].endswith("/AssignmentList")


def test_list_routes_take_limit_and_cursor(doc: dict[str, Any]) -> None:
    for path in ("/api/v1/users", "/api/v1/audit-log"):
        params = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}
        limit = params["limit"]["schema"]
        assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == ("integer", 1, 500, 50)
        assert "cursor" in params
    audit = {p["name"] for p in doc["paths"]["/api/v1/audit-log"]["get"]["parameters"]}
    assert audit == {"actor_id", "action", "target_type", "target_id", "since", "until", "limit", "cursor"}


def test_login_and_me_document_the_cookie_the_csrf_header_and_retry_after(doc: dict[str, Any]) -> None:
    login = doc["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert "Set-Cookie" in login["200"]["headers"]
    assert "Retry-After" in login["429"]["headers"]
    me = doc["paths"]["/api/v1/auth/me"]["get"]["responses"]
    assert "X-CSRF-Token" in me["200"]["headers"]


def test_every_error_code_of_an_operation_has_a_status_and_a_meaning() -> None:
    """The table of operations is where a route's service errors are listed: each code it names is
    mapped to an HTTP status once (problems.STATUS_BY_CODE) and says what it means (ERROR_MEANING)."""
    for op in ops.OPERATIONS:
        for code in op.errors:
            assert code in ops.ERROR_MEANING, (op.subject, code)
            if ops.GATEWAY in op.callers:
                assert code in STATUS_BY_CODE, (op.subject, code)


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("post", "/api/v1/me/ssh-keys", "SSH_KEYS_ADD"),
        ("post", "/api/v1/assignments", "ASSIGNMENTS_CREATE"),
        ("post", "/api/v1/auth/login", "AUTH_LOGIN"),
        ("delete", "/api/v1/environments/{id}", "ENVIRONMENTS_DELETE"),
    ],
)
def test_a_route_documents_each_error_code_its_operation_lists(
    doc: dict[str, Any], method: str, path: str, operation: str
) -> None:
    op = getattr(ops, operation)
    responses = doc["paths"][path][method]["responses"]
    for code in op.errors:
        status = str(STATUS_BY_CODE[code])
        assert f"`{code}`" in responses[status]["description"], (path, code)
