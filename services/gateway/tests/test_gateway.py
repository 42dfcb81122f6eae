"""The gateway's HTTP surface against real services on a real NATS and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel
from sqlalchemy import text

from gpulab_core.events import MAX_MESSAGE_BYTES
from gpulab_core.rpc import RpcClient
from gpulab_core.runtime import Runtime
from gpulab_devstack.testing import BACKEND, TEST_CA_PASSPHRASE, Stack, wait_until
from gpulab_gateway import frontend, middleware
from gpulab_gateway.app import create_app
from gpulab_gateway.config import Settings
from gpulab_gateway.middleware import route_template


def settings_for(stack: Stack, **extra: object) -> Settings:
    return Settings(nats_url=stack.nats_url, metrics_port=0, **extra)  # type: ignore[arg-type]


@pytest.fixture
async def app(stack: Stack, nc: NATS, tmp_path: Path) -> FastAPI:
    return create_app(settings_for(stack, max_body_bytes=4096, frontend_dir=tmp_path / "web"), RpcClient(nc))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c


# Ports picked free, and the session's one CA passphrase (every pki on this database opens the same key).
OWN_SETTINGS: dict[str, dict[str, object]] = {
    "pki": {"enroll_port": 0, "ca_passphrase": TEST_CA_PASSPHRASE},
    "inventory": {"heartbeat_port": 0},
}


@pytest.fixture
async def backend(migrated: Stack) -> AsyncIterator[dict[str, Runtime]]:
    """The five back-end services, each a real runtime in this process."""
    import importlib

    runtimes: dict[str, Runtime] = {}
    for name in BACKEND:
        module = importlib.import_module(f"gpulab_{name}.main")
        settings = module.spec.settings_cls(
            database_url=migrated.service_database_url(name),
            nats_url=migrated.nats_url,
            metrics_port=0,
            **OWN_SETTINGS.get(name, {}),
        )
        runtime = Runtime(module.spec, settings)
        await runtime.start()
        runtimes[name] = runtime
    # inventory's heartbeat port listens once pki has signed its certificate; until then it is not ready.
    await runtimes["inventory"].parts["heartbeat"].started.wait()
    yield runtimes
    for runtime in runtimes.values():
        await runtime.stop()


async def test_healthz_is_ok_when_every_service_answers_and_names_the_one_that_stops(
    client: httpx.AsyncClient, backend: dict[str, Runtime]
) -> None:
    reply = await client.get("/api/v1/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "services": dict.fromkeys(BACKEND, "ok"), "problems": {}}

    scheduler = backend.pop("scheduler")
    await scheduler.stop()
    reply = await client.get("/api/v1/healthz")
    assert reply.json() == {
        "status": "degraded",
        "services": {**dict.fromkeys(BACKEND, "ok"), "scheduler": "down"},
        "problems": {},
    }


async def test_healthz_is_degraded_while_a_service_holds_an_event_it_could_never_publish(
    client: httpx.AsyncClient, backend: dict[str, Runtime]
) -> None:
    """notify's relay meets a row bigger than the bus carries: it sets it aside, and says so."""
    notify = backend["notify"]
    assert notify.engine is not None
    too_big = {"data": "x" * MAX_MESSAGE_BYTES}
    async with notify.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO notify.outbox (id, subject, payload, headers) "
                "VALUES (:id, 'gpulab.events.notify.test_oversized', CAST(:payload AS jsonb), '{}')"
            ),
            {"id": uuid.uuid4(), "payload": json.dumps(too_big)},
        )
        await conn.execute(text("SELECT pg_notify('gpulab_outbox_notify', '')"))
    try:
        body: dict[str, object] = {}

        async def degraded() -> bool:
            nonlocal body
            body = (await client.get("/api/v1/healthz")).json()
            return body["status"] == "degraded"

        await wait_until(degraded, timeout_s=30, interval_s=0.2)
        assert body["services"] == dict.fromkeys(BACKEND, "ok")
        assert body["problems"] == {
            "notify": [
                "1 event(s) could never be published and were set aside in notify.outbox_dead_letters"
                " (see the logs: the consumers of those events never got them)"
            ]
        }
    finally:
        async with notify.engine.begin() as conn:
            await conn.execute(text("DELETE FROM notify.outbox_dead_letters WHERE subject LIKE '%.test_oversized'"))
    assert (await client.get("/api/v1/healthz")).json()["status"] == "ok"


async def test_healthz_reports_every_service_down_quickly_when_none_runs(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/v1/healthz")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "degraded"
    assert set(body["services"]) == set(BACKEND)


async def test_openapi_document_is_served_under_api_v1(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/v1/openapi.json")
    assert reply.status_code == 200
    doc = reply.json()
    assert doc["info"]["title"] == "gpulab API"
    assert "/api/v1/healthz" in doc["paths"]
    assert not any(p.startswith("/{") for p in doc["paths"]), "the web app fallback is not part of the API"


async def test_unknown_api_path_is_problem_json_404(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/v1/no-such-thing")
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["code"] == "not_found"
    assert body["status"] == 404
    assert {"type", "title", "detail"} <= set(body)


async def test_wrong_method_is_problem_json_405(client: httpx.AsyncClient) -> None:
    reply = await client.post("/api/v1/healthz")
    assert reply.status_code == 405
    assert reply.json()["code"] == "method_not_allowed"


async def test_declared_body_over_the_limit_is_refused_with_413(client: httpx.AsyncClient) -> None:
    reply = await client.post("/api/v1/healthz", content=b"x" * 5000)
    assert reply.status_code == 413
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "request_too_large"


class Thing(BaseModel):
    name: str
    count: int


async def test_streamed_body_over_the_limit_and_bad_json_get_clear_errors(app: FastAPI) -> None:
    received: list[Thing] = []

    @app.post("/api/v1/_test_things", status_code=201)
    async def make(thing: Thing) -> Thing:  # a stand-in for the JSON routes later issues add
        received.append(thing)
        return thing

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        too_big = await c.post("/api/v1/_test_things", content=chunks())
        malformed = await c.post(
            "/api/v1/_test_things", content=b'{"name": ', headers={"content-type": "application/json"}
        )
        wrong = await c.post("/api/v1/_test_things", json={"name": "a", "count": "many"})
        ok = await c.post("/api/v1/_test_things", json={"name": "a", "count": 2})
    assert too_big.status_code == 413
    assert malformed.status_code == 422
    assert malformed.json()["code"] == "malformed_json"
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "invalid_request"
    assert wrong.json()["errors"][0]["loc"] == ["body", "count"]
    assert ok.status_code == 201
    assert received == [Thing(name="a", count=2)], "nothing was created by the bad requests"


async def test_traceparent_is_continued_and_returned(client: httpx.AsyncClient) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    reply = await client.get("/api/v1/openapi.json", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert reply.headers["x-trace-id"] == trace_id


async def test_web_app_is_served_with_spa_fallback_once_built(client: httpx.AsyncClient, tmp_path: Path) -> None:
    not_built = await client.get("/")
    assert not_built.status_code == 503
    assert "not built yet" in not_built.text

    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<html>gpulab app</html>")
    (web / "main-ABCDEF12.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("outside the web root")

    index = await client.get("/")
    assert index.status_code == 200
    assert "gpulab app" in index.text
    assert index.headers["cache-control"] == "no-cache"
    deep = await client.get("/admin/nodes/123")
    assert deep.status_code == 200
    assert "gpulab app" in deep.text
    bundle = await client.get("/main-ABCDEF12.js")
    assert "immutable" in bundle.headers["cache-control"]
    assert (await client.get("/missing-123.js")).status_code == 404
    escape = await client.get("/%2e%2e/secret.txt")
    assert "outside the web root" not in escape.text
    assert (await client.get("/api/v1/not-a-page")).headers["content-type"] == "application/problem+json"


async def test_the_web_app_allows_scripts_only_from_its_own_origin_as_the_caddyfile_does(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # The attack: a script injected into a page (a name that reached the HTML, a compromised
    # dependency's inline snippet) runs with the admin's session. `script-src 'self'` runs only the
    # app's own files. The local run's gateway and the deployment's Caddy send the same policy.
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<html>gpulab app</html>")
    (web / "main-ABCDEF12.js").write_text("console.log(1)")
    for path in ("/", "/admin/nodes/123", "/main-ABCDEF12.js"):
        reply = await client.get(path)
        assert reply.status_code == 200, path
        assert reply.headers["content-security-policy"] == frontend.CONTENT_SECURITY_POLICY, path
    directives = dict(d.strip().split(" ", 1) for d in frontend.CONTENT_SECURITY_POLICY.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    caddyfile = (Path(__file__).resolve().parents[3] / "Caddyfile").read_text()
    assert f'Content-Security-Policy "{frontend.CONTENT_SECURITY_POLICY}"' in caddyfile


async def test_gateway_liveness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "service": "gateway"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"nats": "ok"}
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "python_info" in metrics.text or "process_" in metrics.text
    json.dumps(metrics.text)  # plain text exposition format


async def test_account_routes_are_503_while_identity_does_not_answer(client: httpx.AsyncClient) -> None:
    login = await client.post("/api/v1/auth/login", json={"email": "a@example.org", "password": "x" * 12})
    client.cookies.set("gpulab_session", "some-token")
    me = await client.get("/api/v1/auth/me")
    for reply in (login, me):
        assert reply.status_code == 503
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["code"] == "service_unavailable"
        assert reply.json()["detail"] == "identity is not running"


async def test_a_body_that_is_not_even_text_is_malformed_json(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/api/v1/auth/login", content=b'{"email": "\xff\xfe"}', headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422
    assert reply.json()["code"] == "malformed_json"


async def test_spans_are_named_by_route_template_never_by_a_path_with_a_secret(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(middleware, "tracer", provider.get_tracer("test"))

    await client.get("/api/v1/auth/invites/secret-invite-token")
    await client.get("/api/v1/no/such/secret-path")
    names = [span.name for span in exporter.get_finished_spans()]
    assert names == ["GET /api/v1/auth/invites/{token}", "GET /{path}"]


def test_route_templates_put_every_parameter_back() -> None:
    assert route_template("/api/v1/auth/invites/s3cret/accept", {"token": "s3cret"}) == (
        "/api/v1/auth/invites/{token}/accept"
    )
    assert route_template("/a/x/y", {"path": "a/x/y"}) == "/{path}"
    assert route_template("/users/1/keys/2", {"id": "1", "key": "2"}) == "/users/{id}/keys/{key}"
    assert route_template("/", {}) == "/"
