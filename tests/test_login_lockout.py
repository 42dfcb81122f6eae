"""Issue 12, finding 3: nobody can lock someone else out of their account by failing logins.

identity and the gateway run as their own processes with identity's default limits (300 failures
per address, 30 per account from one address, per hour); a client connecting from PROXY_ADDRESS
plays the reverse proxy (Caddy) and names the real client in `X-Forwarded-For`, as Caddy does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS

from gpulab_core.rpc import RpcClient
from gpulab_devstack.testing import Launcher, Stack
from gpulab_identity.config import Settings as IdentitySettings

from .gateway_support import (
    API,
    PASSWORD,
    PROXY_ADDRESS,
    STRANGER_ADDRESS,
    GatewayProcess,
    log_in,
    make_admin,
    start_gateway,
    unique_email,
    wait_healthy,
)

pytestmark = pytest.mark.slow

# identity's defaults, the limits a deployment runs with.
PER_ADDRESS = IdentitySettings.model_fields["login_max_failures_per_ip"].default
PER_ACCOUNT_AND_ADDRESS = IdentitySettings.model_fields["login_max_failures_per_account"].default
# Failed logins sent at once: enough to be quick, few enough for two cores.
CONCURRENCY = 6


@dataclass
class Plane:
    gateway: GatewayProcess
    stack: Stack

    def via_proxy(self) -> httpx.AsyncClient:
        return self.gateway.client(PROXY_ADDRESS)


@pytest.fixture
async def plane(services: Launcher, nc: NATS, migrated: Stack) -> Plane:
    services.spawn("identity")
    # The proxy's own address, as compose sets the edge network's (loopback /8 is the default).
    gateway = await start_gateway(services, GPULAB_TRUSTED_PROXIES=f"{PROXY_ADDRESS}/32")
    await wait_healthy(RpcClient(nc, timeout_s=20), "identity")
    return Plane(gateway, migrated)


def forwarded(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def fail_logins(client: httpx.AsyncClient, emails: list[str], headers: dict[str, str]) -> list[int]:
    """A wrong password for each email, CONCURRENCY at a time; the statuses in order."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(email: str) -> int:
        async with gate:
            body = {"email": email, "password": "not the password at all"}
            return (await client.post(f"{API}/auth/login", json=body, headers=headers)).status_code

    return list(await asyncio.gather(*(one(e) for e in emails)))


async def audit_entries(client: httpx.AsyncClient, action: str, actor_id: str) -> list[dict[str, Any]]:
    reply = await client.get(f"{API}/audit-log", params={"action": action, "actor_id": actor_id, "limit": 500})
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


async def test_301_failed_logins_from_one_address_then_a_correct_one_from_another_is_200(plane: Plane) -> None:
    attacker, user = "198.51.100.7", "203.0.113.50"
    victim = unique_email("victim")
    await make_admin(plane.stack, victim)
    # Sprayed across many accounts (the victim's among them) so that only the per-address limit counts.
    emails = [victim] * 10 + [unique_email("sprayed") for _ in range(PER_ADDRESS - 10)]
    async with plane.via_proxy() as proxy:
        statuses = await fail_logins(proxy, emails, forwarded(attacker))
        assert statuses == [401] * PER_ADDRESS, "every failure up to the limit is evaluated"
        over = await proxy.post(
            f"{API}/auth/login", json={"email": unique_email(), "password": "x" * 12}, headers=forwarded(attacker)
        )
        assert over.status_code == 429, "the 301st from that address is refused unevaluated"
        assert over.json()["code"] == "too_many_attempts"
        # The attacker's address is limited even with the right password ...
        refused = await proxy.post(
            f"{API}/auth/login", json={"email": victim, "password": PASSWORD}, headers=forwarded(attacker)
        )
        assert refused.status_code == 429
    # ... and the victim, from their own address, is not.
    async with plane.via_proxy() as browser:
        await log_in(browser, victim, headers=forwarded(user))
        me = (await browser.get(f"{API}/auth/me")).json()
        logins = await audit_entries(browser, "auth.login", me["id"])
        failures = await audit_entries(browser, "auth.login_failed", me["id"])
    assert [e["details"]["client_ip"] for e in logins] == [user], "the audit log names the real client"
    assert {e["details"]["client_ip"] for e in failures} == {attacker}
    assert len(failures) == 10


async def test_31_failures_against_the_admins_email_do_not_lock_the_admin_out_from_another_address(
    plane: Plane,
) -> None:
    attacker, admin_address = "198.51.100.31", "203.0.113.31"
    admin = unique_email("admin")
    await make_admin(plane.stack, admin)
    async with plane.via_proxy() as proxy:
        statuses = await fail_logins(proxy, [admin] * PER_ACCOUNT_AND_ADDRESS, forwarded(attacker))
        assert statuses == [401] * PER_ACCOUNT_AND_ADDRESS
        over = await proxy.post(
            f"{API}/auth/login", json={"email": admin, "password": PASSWORD}, headers=forwarded(attacker)
        )
        assert over.status_code == 429, "the 31st try at this account from that address is not evaluated"
        assert 1 <= int(over.headers["retry-after"]) <= 3601
        # Another account from the same address is still evaluated: only the 300 per address stop it.
        other = await proxy.post(
            f"{API}/auth/login", json={"email": unique_email(), "password": "x" * 12}, headers=forwarded(attacker)
        )
        assert other.status_code == 401
    async with plane.via_proxy() as browser:
        await log_in(browser, admin, headers=forwarded(admin_address))


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored_and_the_peer_itself_is_limited(
    plane: Plane,
) -> None:
    victim = unique_email("victim")
    await make_admin(plane.stack, victim)
    # Someone who reaches the gateway directly names a new address on every try: none is believed.
    async with plane.gateway.client(STRANGER_ADDRESS) as stranger:
        for i in range(PER_ACCOUNT_AND_ADDRESS):
            body = {"email": victim, "password": "not the password at all"}
            failed = await stranger.post(f"{API}/auth/login", json=body, headers=forwarded(f"198.51.100.{100 + i}"))
            assert failed.status_code == 401
        limited = await stranger.post(
            f"{API}/auth/login", json={"email": victim, "password": PASSWORD}, headers=forwarded("198.51.100.200")
        )
        assert limited.status_code == 429, "counted against the peer's own address, whatever it claims"
    async with plane.via_proxy() as browser:
        await log_in(browser, victim, headers=forwarded("203.0.113.77"))
        me = (await browser.get(f"{API}/auth/me")).json()
        failures = await audit_entries(browser, "auth.login_failed", me["id"])
    assert {e["details"]["client_ip"] for e in failures} == {STRANGER_ADDRESS}
