"""The fake NetBird itself answers as NetBird's management API does (fake_netbird.py says which
documented behaviour it follows): the provider's tests are only as good as this."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .fake_netbird import EnrollmentRefused, FakeNetBird
from .netbird_support import ALL_GROUP, GROUP, TOKEN, http, netbird, netbird_server

__all__ = ["http", "netbird", "netbird_server"]  # fixtures


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        ({}, {}, 401, "no valid authentication provided"),
        ({"Authorization": f"Basic {TOKEN}"}, {}, 401, "no valid authentication provided"),
        ({"Authorization": "Token nbp_wrong"}, {}, 401, "token invalid"),
        ({"Authorization": f"Token {TOKEN}"}, "{not json", 400, "couldn't parse JSON request"),
        ({"Authorization": f"Token {TOKEN}"}, {"name": "k", "type": "one-off", "expires_in": 1.5}, 400, None),
        ({"Authorization": f"Token {TOKEN}"}, {"type": "one-off"}, 422, "setup key name shouldn't be empty"),
        ({"Authorization": f"Token {TOKEN}"}, {"name": "k", "type": "Daily"}, 422, "unknown setup key type daily"),
        ({"Authorization": f"Token {TOKEN}"}, {"name": "k", "type": "one-off", "expires_in": -1}, 422, None),
        (
            {"Authorization": f"Token {TOKEN}"},
            {"name": "k", "type": "one-off", "auto_groups": [ALL_GROUP]},
            422,
            "invalid auto groups: can't add 'all' group to the setup key",
        ),
    ],
)
async def test_the_fake_refuses_as_netbird_does(
    headers: dict[str, str],
    body: dict[str, Any] | str,
    status: int,
    message: str | None,
    netbird: FakeNetBird,
    http: httpx.AsyncClient,
) -> None:
    content = body if isinstance(body, str) else httpx.Request("POST", "/", json=body).content
    reply = await http.post(f"{netbird.url}/api/setup-keys", headers=headers, content=content)

    assert reply.status_code == status
    assert reply.json()["code"] == status
    if message is not None:
        assert reply.json()["message"] == message


async def test_the_fake_treats_zero_expiry_as_never_and_a_bearer_pat_as_a_token(
    netbird: FakeNetBird, http: httpx.AsyncClient
) -> None:
    reply = await http.post(
        f"{netbird.url}/api/setup-keys",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"name": "k", "type": "reusable", "expires_in": 0, "auto_groups": [], "usage_limit": 0},
    )

    assert reply.status_code == 200
    assert reply.json()["expires"] == "0001-01-01T00:00:00Z"
    assert reply.json()["usage_limit"] == 0


async def test_the_fake_refuses_a_used_expired_or_deleted_key_and_a_linked_group(
    netbird: FakeNetBird, http: httpx.AsyncClient
) -> None:
    auth = {"Authorization": f"Token {TOKEN}"}
    body = {"name": "k", "type": "one-off", "expires_in": 60, "auto_groups": [GROUP], "usage_limit": 1}
    used, expiring, deleted = [
        (await http.post(f"{netbird.url}/api/setup-keys", headers=auth, json=body)).json() for _ in range(3)
    ]
    netbird.enroll(used["key"], "first")
    with pytest.raises(EnrollmentRefused, match="overused"):
        netbird.enroll(used["key"], "second")
    assert (await http.delete(f"{netbird.url}/api/setup-keys/{deleted['id']}", headers=auth)).json() == {}
    with pytest.raises(EnrollmentRefused, match="invalid"):
        netbird.enroll(deleted["key"], "third")
    netbird.advance(61)
    with pytest.raises(EnrollmentRefused, match="expired"):
        netbird.enroll(expiring["key"], "fourth")
    shown = (await http.get(f"{netbird.url}/api/setup-keys/{expiring['id']}", headers=auth)).json()
    assert (shown["state"], shown["valid"]) == ("expired", False)

    linked = await http.delete(f"{netbird.url}/api/groups/{GROUP}", headers=auth)
    assert (linked.status_code, linked.json()["message"]) == (400, "group has been linked to setup key: k")
    everyone = await http.delete(f"{netbird.url}/api/groups/{ALL_GROUP}", headers=auth)
    assert everyone.status_code == 422
    taken = await http.post(f"{netbird.url}/api/groups", headers=auth, json={"name": "gpulab-users"})
    assert (taken.status_code, taken.json()["code"]) == (409, 409)
    [peer] = (await http.get(f"{netbird.url}/api/peers", headers=auth)).json()
    assert [g["name"] for g in peer["groups"]] == ["gpulab-users", "All"]
    assert (await http.delete(f"{netbird.url}/api/peers/{peer['id']}", headers=auth)).json() == {}
    gone = await http.delete(f"{netbird.url}/api/peers/{peer['id']}", headers=auth)
    assert (gone.status_code, gone.json()["message"]) == (404, "peer not found")
