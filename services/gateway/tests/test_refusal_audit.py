"""Issue 12, finding 8: a request refused for lack of right (a failed CSRF check, a user at an admin
route) is recorded in the audit log, within bounds an attacker cannot flood past."""

from __future__ import annotations

import random
from typing import Any

from gpulab_devstack.testing import wait_until
from gpulab_gateway.refusals import NOT_REPORTED

from .conftest import API, Browser, GatewayFactory, UserFactory, log_in


def an_address() -> str:
    """A client address of its own (TEST-NET-2), so that other tests' refusals do not count with it."""
    return f"198.51.100.{random.randint(1, 254)}"


async def refusals(admin: Browser, client_ip: str) -> list[dict[str, Any]]:
    page = await admin.get("/audit-log", params={"action": "request.refused", "limit": 200})
    assert page.status_code == 200, page.text
    return [e for e in page.json()["items"] if e["details"].get("client_ip") == client_ip]


async def test_a_refused_csrf_request_appears_in_the_audit_log(admin: Browser) -> None:
    address = an_address()
    # The session cookie rides along (a cross-site form post), the CSRF token does not.
    refused = await admin.client.post(
        f"{API}/users/invites", json={"email": "x@example.org", "role": "admin"}, headers={"X-Forwarded-For": address}
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"

    async def recorded() -> list[dict[str, Any]]:
        return await refusals(admin, address)

    await wait_until(recorded, timeout_s=20)
    (entry,) = await recorded()
    assert entry["actor_id"] == admin.user_id
    assert entry["target_type"] == "route"
    assert entry["target_id"] == "POST /api/v1/users/invites"
    assert entry["details"] == {
        "code": "csrf_failed",
        "method": "POST",
        "route": "/api/v1/users/invites",
        "client_ip": address,
    }


async def test_a_user_at_an_admin_route_is_audited_by_route_never_by_path(
    admin: Browser, new_user: UserFactory
) -> None:
    user = await new_user()
    address = an_address()
    reply = await user.client.get(f"{API}/users/{admin.user_id}", headers={"X-Forwarded-For": address})
    assert reply.status_code == 403

    async def recorded() -> list[dict[str, Any]]:
        return await refusals(admin, address)

    await wait_until(recorded, timeout_s=20)
    (entry,) = await recorded()
    assert entry["actor_id"] == user.user_id
    assert entry["details"]["code"] == "forbidden"
    assert entry["details"]["route"] == "/api/v1/users/{id}", "the template: paths may carry secrets"


async def test_a_gateway_reports_its_bound_of_refusals_a_minute_and_no_more(
    make_gateway: GatewayFactory, admin: Browser, admin_email: str
) -> None:
    gateway = make_gateway(audit_refusal_reports_per_minute=2)
    before = NOT_REPORTED.labels("bound")._value.get()
    addresses = [an_address() for _ in range(3)]
    async with gateway.browser() as client:
        await log_in(client, admin_email)
        for address in addresses:
            refused = await client.post(f"{API}/users/invites", json={}, headers={"X-Forwarded-For": address})
            assert refused.status_code == 403

    async def two_recorded() -> bool:
        return all([await refusals(admin, a) for a in addresses[:2]])

    await wait_until(two_recorded, timeout_s=20)  # at the bound: reported
    assert NOT_REPORTED.labels("bound")._value.get() == before + 1  # one over: not sent
    assert await refusals(admin, addresses[2]) == []
