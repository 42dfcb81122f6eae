"""`/nodes` and `/enrollment/ca` through the gateway, with identity, pki and inventory running for real."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gpulab_core.runtime import Runtime
from gpulab_devstack.servers import free_port
from gpulab_devstack.testing import TEST_CA_PASSPHRASE, Stack
from gpulab_inventory import main as inventory_main
from gpulab_inventory.config import Settings as InventorySettings
from gpulab_pki import main as pki_main
from gpulab_pki.config import Settings as PkiSettings

from .conftest import API, Browser, Gateway, UserFactory

PUBLIC_URL = "https://gpulab.example.org"


@pytest.fixture(scope="module")
async def node_services(migrated: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Runtime]]:
    data: Path = tmp_path_factory.mktemp("nodes-api")
    common: dict[str, Any] = {
        "nats_url": migrated.nats_url,
        "metrics_port": 0,
        "public_url": PUBLIC_URL,
        "data_dir": data,
    }
    pki = Runtime(
        pki_main.spec,
        PkiSettings(
            **common,
            database_url=migrated.service_database_url("pki"),
            ca_passphrase=TEST_CA_PASSPHRASE,
            enroll_port=free_port(),
        ),
    )
    await pki.start()
    inventory = Runtime(
        inventory_main.spec,
        InventorySettings(
            **common, database_url=migrated.service_database_url("inventory"), heartbeat_port=0, rpc_timeout_s=1.5
        ),
    )
    await inventory.start()
    runtimes = {"pki": pki, "inventory": inventory}
    yield runtimes
    for runtime in runtimes.values():
        if runtime.health_server is not None and not runtime.nc.is_closed:
            await runtime.stop()


def new_node(**fields: object) -> dict[str, object]:
    return {"hostname": f"gpu-{uuid.uuid4().hex[:10]}", "type": "linux", "management_ip": "192.0.2.10", **fields}


@pytest.mark.usefixtures("node_services")
async def test_the_admin_adds_lists_gets_and_deletes_a_node(admin: Browser) -> None:
    created = await admin.post("/nodes", json=new_node(management_ip="2001:db8::10"))
    assert created.status_code == 201, created.text
    body = created.json()
    node, enrollment = body["node"], body["enrollment"]
    assert set(node) >= {
        "id",
        "hostname",
        "type",
        "management_ip",
        "status",
        "last_seen_at",
        "agent_version",
        "hardware",
    }
    assert node["status"] == "pending"
    assert node["management_ip"] == "2001:db8::10"
    assert set(enrollment) == {"token", "expires_at", "install_command", "ca_fingerprint"}
    assert enrollment["token"] in enrollment["install_command"]
    assert enrollment["install_command"].startswith(f"{{ curl -fsSL {PUBLIC_URL}/install-agent.sh && printf ")
    assert enrollment["install_command"].endswith(" --token-file -")

    listed = await admin.get("/nodes", params={"limit": 500})
    assert listed.status_code == 200
    assert node["id"] in {n["id"] for n in listed.json()["items"]}
    assert all("token" not in n for n in listed.json()["items"])  # shown once, at creation only
    fetched = await admin.get(f"/nodes/{node['id']}")
    assert fetched.json() == node

    token = await admin.post(f"/nodes/{node['id']}/enrollment-tokens")
    assert token.status_code == 201
    assert token.json()["token"] != enrollment["token"]

    deleted = await admin.delete(f"/nodes/{node['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "revoked"
    again = await admin.post(f"/nodes/{node['id']}/enrollment-tokens")
    assert again.status_code == 409
    assert again.json()["code"] == "node_revoked"


@pytest.mark.usefixtures("node_services")
async def test_bad_node_requests_get_clear_errors_and_change_nothing(admin: Browser) -> None:
    before = (await admin.get("/nodes", params={"limit": 500})).json()["items"]
    cases = [
        new_node(hostname="bad host"),
        new_node(type="windows"),
        new_node(management_ip="300.1.1.1"),
        new_node(extra="field"),
        {"hostname": "only-a-name"},
    ]
    for case in cases:
        reply = await admin.post("/nodes", json=case)
        assert reply.status_code == 422, case
        assert reply.headers["content-type"] == "application/problem+json"
    malformed = await admin.client.post(
        f"{API}/nodes", content=b"{not json", headers={**admin.write_headers(), "content-type": "application/json"}
    )
    assert malformed.status_code in (400, 422)
    twice = new_node()
    assert (await admin.post("/nodes", json=twice)).status_code == 201
    duplicate = await admin.post("/nodes", json=twice)
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "node_exists"
    unknown = uuid.uuid4()
    assert (await admin.get(f"/nodes/{unknown}")).status_code == 404
    assert (await admin.delete(f"/nodes/{unknown}")).status_code == 404
    assert (await admin.post(f"/nodes/{unknown}/enrollment-tokens")).status_code == 404
    assert (await admin.get("/nodes/not-a-uuid")).status_code == 422
    after = (await admin.get("/nodes", params={"limit": 500})).json()["items"]
    assert len(after) == len(before) + 1


@pytest.mark.usefixtures("node_services")
async def test_nodes_are_for_admins_only_and_writes_need_the_csrf_token(
    gateway: Gateway, admin: Browser, new_user: UserFactory
) -> None:
    async with gateway.browser() as anonymous:
        assert (await anonymous.get(f"{API}/nodes")).status_code == 401
        assert (await anonymous.post(f"{API}/nodes", json=new_node())).status_code == 401
    user = await new_user()
    assert (await user.get("/nodes")).status_code == 403
    assert (await user.post("/nodes", json=new_node())).status_code == 403
    no_csrf = await admin.client.post(f"{API}/nodes", json=new_node())
    assert no_csrf.status_code == 403
    assert no_csrf.json()["code"] == "csrf_failed"


@pytest.mark.usefixtures("node_services")
async def test_anyone_gets_the_ca_certificate_and_a_fingerprint_that_matches_it(gateway: Gateway) -> None:
    async with gateway.browser() as anonymous:
        reply = await anonymous.get(f"{API}/enrollment/ca")
    assert reply.status_code == 200
    body = reply.json()
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    der = cert.public_bytes(serialization.Encoding.DER)
    assert body["sha256_fingerprint"] == hashlib.sha256(der).hexdigest()
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert base64.b64decode("".join(body["certificate_pem"].splitlines()[1:-1])) == der


async def test_without_pki_adding_a_node_is_503_and_creates_nothing(
    admin: Browser, node_services: dict[str, Runtime]
) -> None:
    """Last in this module: it stops pki."""
    await node_services["pki"].stop()
    before = (await admin.get("/nodes", params={"limit": 500})).json()["items"]
    reply = await admin.post("/nodes", json=new_node())
    assert reply.status_code == 503
    assert reply.json()["code"] == "service_unavailable"
    after = (await admin.get("/nodes", params={"limit": 500})).json()["items"]
    assert after == before
    async with httpx.AsyncClient(transport=admin.client._transport, base_url=str(admin.client.base_url)) as other:
        assert (await other.get(f"{API}/enrollment/ca")).status_code == 503
