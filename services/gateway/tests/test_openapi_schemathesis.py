"""Property-based run of every API route against their own OpenAPI document (schemathesis).

The gateway is served by uvicorn on a loopback port, wired to the real identity, pki, inventory and
scheduler services, all on an
event loop of their own in a background thread: schemathesis drives requests synchronously, and a
NATS connection belongs to the loop that opened it. Every case is sent as a logged-in admin (the
session cookie and the CSRF header), so the generated data reaches identity instead of stopping at 401.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import settings
from nats.aio.client import Client as NATS
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gpulab_core.rpc import RpcClient
from gpulab_core.runtime import Runtime
from gpulab_devstack.testing import TEST_CA_PASSPHRASE, Stack
from gpulab_gateway.app import create_app
from gpulab_gateway.config import Settings
from gpulab_identity import main as identity_main
from gpulab_inventory import main as inventory_main
from gpulab_inventory.config import Settings as InventorySettings
from gpulab_pki import main as pki_main
from gpulab_pki.config import Settings as PkiSettings
from gpulab_scheduler import main as scheduler_main
from gpulab_scheduler.config import Settings as SchedulerSettings

from .conftest import API, PASSWORD, gateway_settings, identity_settings, make_admin, unique_email

T = TypeVar("T")

# Generated cases per operation (positive and negative), on top of schemathesis' explicit and coverage
# cases: about 500 requests, ~35 s with the stack's start on 2 cores.
MAX_EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _document() -> dict[str, Any]:
    # Building the document needs no service: an unconnected NATS client is enough.
    return create_app(Settings(), RpcClient(NATS())).openapi()


schema = schemathesis.openapi.from_dict(_document()).exclude(
    # healthz waits on five services this module does not run; logout would end the admin's session.
    path_regex=r"^/api/v1/(healthz|auth/logout)$"
)
schema.config.generation.update(
    max_examples=MAX_EXAMPLES,
    # The cookie and CSRF header are ours to send; generated ones would only ever get 401/403.
    with_security_parameters=False,
    # The same cases on every run: a failure in CI is a failure on a laptop.
    deterministic=True,
)


@dataclass
class Live:
    base_url: str
    session: requests.Session
    csrf: str


class Background:
    """An event loop in a thread of its own, for the services and the HTTP server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway-under-test", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def live(migrated: Stack) -> Iterator[Live]:
    background = Background()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    admin_email = unique_email("fuzz-admin")

    async def start() -> tuple[list[Runtime], NATS, uvicorn.Server, asyncio.Task[None]]:
        identity = Runtime(identity_main.spec, identity_settings(migrated))
        await identity.start()
        await make_admin(identity, admin_email)
        common: dict[str, Any] = {"nats_url": migrated.nats_url}
        url = migrated.service_database_url
        pki = Runtime(
            pki_main.spec,
            PkiSettings(
                **common, database_url=url("pki"), metrics_port=0, enroll_port=0, ca_passphrase=TEST_CA_PASSPHRASE
            ),
        )
        await pki.start()
        inventory = Runtime(
            inventory_main.spec,
            InventorySettings(**common, database_url=url("inventory"), metrics_port=0, heartbeat_port=0),
        )
        await inventory.start()
        scheduler = Runtime(
            scheduler_main.spec, SchedulerSettings(**common, database_url=url("scheduler"), metrics_port=0)
        )
        await scheduler.start()
        nc = await nats.connect(migrated.nats_url)
        app = create_app(gateway_settings(migrated), RpcClient(nc))
        server = uvicorn.Server(
            uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, server_header=False)
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        return [scheduler, inventory, pki, identity], nc, server, task

    async def stop() -> None:
        server.should_exit = True
        await task
        await nc.drain()
        for runtime in runtimes:
            await runtime.stop()

    runtimes, nc, server, task = background.run(start())
    try:
        with requests.Session() as session:
            login = session.post(f"{base_url}{API}/auth/login", json={"email": admin_email, "password": PASSWORD})
            assert login.status_code == 200, login.text
            yield Live(base_url, session, login.json()["csrf_token"])
    finally:
        background.run(stop())
        background.close()
        sock.close()


@schema.parametrize()
@settings(database=None)  # nothing written to .hypothesis/: the cases are derandomized anyway
def test_account_routes_conform_to_their_openapi_document(case: schemathesis.Case[Any], live: Live) -> None:
    case.call_and_validate(
        base_url=live.base_url,
        session=live.session,
        headers={"X-CSRF-Token": live.csrf},
        checks=CHECKS,
        timeout=30,
    )
