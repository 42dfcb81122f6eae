"""The netbird access provider. A fake NetBird management API that answers as NetBird does judges the
setup-key calls."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from gpulab_core.contracts.scheduler import ACCESS_PROVIDER_FAILED, ASSIGNMENT_ENDED_ALREADY
from gpulab_core.errors import GpulabError, Unavailable
from gpulab_scheduler.access import AccessUnavailable, NetBird, netbird_client, provider_for
from gpulab_scheduler.config import Settings

from .access_support import target
from .fake_netbird import FakeNetBird
from .netbird_support import GROUP, TOKEN, http, netbird, netbird_server

__all__ = ["http", "netbird", "netbird_server"]  # fixtures, shared with test_fake_netbird.py


def netbird_provider(http: httpx.AsyncClient, url: str | None, **changes: Any) -> NetBird:
    options: dict[str, Any] = {
        "api_url": url,
        "api_token": SecretStr(TOKEN),
        "auto_groups": [GROUP],
        "setup_key_ttl_s": 86400,
        "timeout_s": 2.0,
        "http_client": http,
    }
    return NetBird(**{**options, **changes})


def assert_unavailable(error: GpulabError, *words: str) -> None:
    assert error.code == ACCESS_PROVIDER_FAILED
    assert isinstance(error, Unavailable)
    for text in (error.message, str(error), repr(error)):
        assert TOKEN not in text
        assert TOKEN[4:20] not in text  # not even a piece of it
    for word in words:
        assert word in error.message, error.message


async def test_a_one_off_setup_key_is_created_as_netbird_documents_it(
    netbird: FakeNetBird, http: httpx.AsyncClient
) -> None:
    before = datetime.now(UTC)
    issued = await netbird_provider(http, netbird.url).create_key(target(expires_at=None))
    access = issued.access

    [request] = netbird.requests
    assert (request.method, request.path) == ("POST", "/api/setup-keys")
    assert request.headers["authorization"] == f"Token {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "name": f"gpulab {target().assignment_id} alice@example.org",
        "type": "one-off",
        "expires_in": 86400,
        "auto_groups": [GROUP],
        "usage_limit": 1,
        "ephemeral": False,
    }
    [created] = netbird.keys.values()
    assert (issued.id, issued.name) == (created["id"], created["name"])
    assert access.provider == "netbird"
    assert access.setup_key == created["key"]
    assert access.management_url == netbird.url
    assert access.expires_at is not None
    assert timedelta(days=1) <= access.expires_at - before <= timedelta(days=1, seconds=10)
    assert access.ssh_config is None
    assert access.ssh_command is None

    # What NetBird now holds: a one-off key for one use, its secret no longer shown.
    shown = await http.get(f"{netbird.url}/api/setup-keys/{created['id']}", headers={"Authorization": f"Token {TOKEN}"})
    assert shown.status_code == 200
    assert shown.json()["type"] == "one-off"
    assert shown.json()["usage_limit"] == 1
    assert shown.json()["key"].endswith("****")


async def test_the_key_expires_no_later_than_the_assignment(netbird: FakeNetBird, http: httpx.AsyncClient) -> None:
    access = (
        await netbird_provider(http, netbird.url).create_key(target(expires_at=datetime.now(UTC) + timedelta(hours=1)))
    ).access

    assert 3590 <= netbird.requests[0].json()["expires_in"] <= 3600
    assert access.expires_at is not None
    assert access.expires_at <= datetime.now(UTC) + timedelta(hours=1, seconds=5)


async def test_an_expired_assignment_gets_no_key(netbird: FakeNetBird, http: httpx.AsyncClient) -> None:
    with pytest.raises(GpulabError) as caught:
        await netbird_provider(http, netbird.url).create_key(
            target(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    assert caught.value.code == ASSIGNMENT_ENDED_ALREADY
    assert netbird.requests == []


@pytest.mark.parametrize("suffix", ["/", "/api", "/api/"])
async def test_the_api_url_may_name_the_api_path(suffix: str, netbird: FakeNetBird, http: httpx.AsyncClient) -> None:
    access = (await netbird_provider(http, netbird.url + suffix).create_key(target())).access

    assert netbird.requests[0].path == "/api/setup-keys"
    assert access.management_url == netbird.url


async def test_the_provider_is_built_from_the_settings(netbird: FakeNetBird, http: httpx.AsyncClient) -> None:
    settings = Settings(
        netbird_api_url=netbird.url,
        netbird_api_token=SecretStr(TOKEN),
        netbird_auto_groups=f" {GROUP}, ,",
        netbird_setup_key_ttl_s=7200,
        ssh_jump_host="bastion.example.org",
    )

    access = (await netbird_client(settings, http).create_key(target())).access
    ssh = await provider_for("ssh_proxy_jump", settings).access(target())

    assert access.setup_key is not None
    assert netbird.requests[0].json()["auto_groups"] == [GROUP]
    assert netbird.requests[0].json()["expires_in"] == 7200
    assert ssh.ssh_command == "ssh -J alice@bastion.example.org alice@10.20.0.5"
    with pytest.raises(AccessUnavailable):
        provider_for("wireguard", settings)


async def test_a_wrong_token_is_reported_with_netbirds_words(netbird: FakeNetBird, http: httpx.AsyncClient) -> None:
    netbird.tokens = {"nbp_another"}
    with pytest.raises(AccessUnavailable) as caught:
        await netbird_provider(http, netbird.url).create_key(target())

    assert_unavailable(caught.value, "HTTP 401", "token invalid", netbird.url)


async def test_an_unknown_group_is_reported_with_netbirds_words(netbird: FakeNetBird, http: httpx.AsyncClient) -> None:
    with pytest.raises(AccessUnavailable) as caught:
        await netbird_provider(http, netbird.url, auto_groups=["nosuchgroup"]).create_key(target())

    assert_unavailable(caught.value, "HTTP 422", "group not found: nosuchgroup")


@pytest.mark.parametrize(
    ("status", "body", "content_type", "words"),
    [
        (
            500,
            {"message": "internal server error", "code": 500},
            "application/json",
            ["HTTP 500", "internal server error"],
        ),
        (403, {"message": "user is not admin", "code": 403}, "application/json", ["HTTP 403", "user is not admin"]),
        (502, "<html><body><h1>502 Bad Gateway</h1>\n</body></html>", "text/html", ["HTTP 502", "Bad Gateway"]),
        (500, {"message": f"bad token {TOKEN}", "code": 500}, "application/json", ["HTTP 500", "bad token [token]"]),
        (500, "x" * 280 + TOKEN, "text/plain", ["HTTP 500", "[token]"]),
        (301, "", "text/plain", ["HTTP 301"]),  # a redirect is not followed with the token
    ],
)
async def test_netbird_errors_are_reported_without_the_token(
    status: int,
    body: dict[str, Any] | str,
    content_type: str,
    words: list[str],
    netbird: FakeNetBird,
    http: httpx.AsyncClient,
) -> None:
    netbird.fail_with(status, body, content_type)
    with pytest.raises(AccessUnavailable) as caught:
        await netbird_provider(http, netbird.url).create_key(target())

    assert_unavailable(caught.value, *words)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("<html>maintenance</html>", ["not JSON", "maintenance"]),
        ("[]", ["a JSON list"]),
        ('{"id": "1", "expires": "2030-01-01T00:00:00Z"}', ["no usable `key`"]),
        ('{"key": "A6160****", "expires": "2030-01-01T00:00:00Z"}', ["no usable `key`"]),
        ('{"key": "A616 097E", "expires": "2030-01-01T00:00:00Z"}', ["no usable `key`"]),
        ('{"key": "A616097E", "expires": "tomorrow"}', ["`expires` is not an RFC 3339 time", "tomorrow"]),
        ('{"key": "A616097E", "expires": "2030-01-01T00:00:00"}', ["`expires`"]),
        ('{"key": "A616097E"}', ["`expires`"]),
    ],
)
async def test_a_reply_that_cannot_be_used_is_reported(
    body: str, words: list[str], netbird: FakeNetBird, http: httpx.AsyncClient
) -> None:
    netbird.fail_with(200, body)
    with pytest.raises(AccessUnavailable) as caught:
        await netbird_provider(http, netbird.url).create_key(target())

    assert_unavailable(caught.value, "sent a reply gpulab cannot use", *words)


async def test_a_slow_netbird_is_reported_as_a_timeout(netbird: FakeNetBird, http: httpx.AsyncClient) -> None:
    netbird.delay_s = 10.0
    with pytest.raises(AccessUnavailable) as caught:
        await netbird_provider(http, netbird.url, timeout_s=0.2).create_key(target())

    assert_unavailable(caught.value, "did not answer within 0.2 s", netbird.url)


async def test_an_unreachable_netbird_is_reported(http: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens there once closed
    with pytest.raises(AccessUnavailable) as caught:
        await netbird_provider(http, url).create_key(target())

    assert_unavailable(caught.value, f"could not reach NetBird at {url}")


@pytest.mark.parametrize(
    ("url", "token", "words"),
    [
        (None, SecretStr(TOKEN), ["GPULAB_NETBIRD_API_URL is not set"]),
        ("  ", SecretStr(TOKEN), ["GPULAB_NETBIRD_API_URL is not set"]),
        ("https://netbird.example.org", None, ["GPULAB_NETBIRD_API_TOKEN is not set"]),
        ("https://netbird.example.org", SecretStr(""), ["GPULAB_NETBIRD_API_TOKEN is not set"]),
        ("https://netbird.example.org", SecretStr(TOKEN + "\nX-Evil: 1"), ["cannot be sent in an HTTP header"]),
        ("netbird.example.org", SecretStr(TOKEN), ["not an http(s) URL"]),
        ("ftp://netbird.example.org", SecretStr(TOKEN), ["not an http(s) URL"]),
        ("https://netbird.example.org:99999", SecretStr(TOKEN), ["not an http(s) URL"]),
        ("https://netbird.example.org/?a=b", SecretStr(TOKEN), ["not an http(s) URL"]),
        ("https://admin:hunter2@netbird.example.org", SecretStr(TOKEN), ["must not carry credentials"]),
        ("http://netbird.example.org", SecretStr(TOKEN), ["plain http"]),
    ],
)
async def test_a_missing_or_unsafe_configuration_is_reported_before_anything_is_sent(
    url: str | None, token: SecretStr | None, words: list[str], http: httpx.AsyncClient
) -> None:
    with pytest.raises(AccessUnavailable) as caught:
        await netbird_provider(http, url, api_token=token).create_key(target())

    assert_unavailable(caught.value, *words)
    assert "hunter2" not in caught.value.message


@pytest.mark.parametrize(("ttl_s", "accepted"), [(59, False), (60, True), (86400, True), (86401, False)])
def test_the_setup_key_lifetime_is_a_minute_to_a_day(ttl_s: int, accepted: bool) -> None:
    if accepted:
        assert Settings(netbird_setup_key_ttl_s=ttl_s).netbird_setup_key_ttl_s == ttl_s
    else:
        with pytest.raises(ValueError, match="netbird_setup_key_ttl_s"):
            Settings(netbird_setup_key_ttl_s=ttl_s)
    assert Settings().netbird_setup_key_ttl_s == 3600


async def test_an_assignments_group_keys_and_peers_are_removed_and_a_repeat_is_harmless(
    netbird: FakeNetBird, http: httpx.AsyncClient
) -> None:
    client = netbird_provider(http, netbird.url)
    group = await client.create_group("gpulab-assignment-1")
    assert await client.create_group("gpulab-assignment-1") == group  # a retry finds the group it made
    mine = await client.create_key(target(), group)
    other = await client.create_key(target())
    laptop = netbird.enroll(mine.access.setup_key or "", "ada-laptop")
    bystander = netbird.enroll(other.access.setup_key or "", "bob-laptop")
    assert await client.key_state(mine.id) == "overused"

    removed = await client.remove_group(group)

    assert (removed.setup_keys, removed.peers) == (1, ["ada-laptop"])
    assert laptop not in netbird.peers
    assert bystander in netbird.peers
    assert list(netbird.keys) == [other.id]
    assert group not in netbird.groups
    assert await client.key_state(mine.id) is None
    again = await client.remove_group(group)  # all gone already: nothing to do, no error
    assert (again.setup_keys, again.peers) == (0, [])


@pytest.mark.parametrize("bad_id", ["../users", "1/../../x", "a b", ""])
async def test_an_id_that_could_change_the_url_is_never_sent(
    bad_id: str, netbird: FakeNetBird, http: httpx.AsyncClient
) -> None:
    with pytest.raises(AccessUnavailable, match="will not put in a URL"):
        await netbird_provider(http, netbird.url).delete_key(bad_id)
    assert netbird.requests == []


async def test_a_failed_removal_says_what_netbird_answered(netbird: FakeNetBird, http: httpx.AsyncClient) -> None:
    netbird.fail_with(500, {"message": "internal server error", "code": 500})
    with pytest.raises(AccessUnavailable) as caught:
        await netbird_provider(http, netbird.url).remove_group("ch8i4ug6lnn4g9hqv7m0")

    assert_unavailable(caught.value, "refused to list setup keys", "HTTP 500", "internal server error")


# ---- the fake itself answers as NetBird does ----
