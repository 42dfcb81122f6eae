"""`netbird`: the calls gpulab makes to NetBird's documented management REST API.

Every call sends `Authorization: Token <personal access token>`. `POST /api/setup-keys` with the
documented `CreateSetupKeyRequest` body answers `SetupKeyClear` (HTTP 200), the plain key shown only
at creation; `GET /api/setup-keys[/{id}]` answers `SetupKey`s with their `state` (`valid`, `expired`,
`revoked`, `overused`); `GET /api/peers` the `Peer`s with their `groups`; `POST /api/groups` a `Group`;
each `DELETE` (`/api/setup-keys/{id}`, `/api/peers/{id}`, `/api/groups/{id}`) an empty object. Errors
come back as `{"message": ..., "code": <HTTP status>}` (401 `token invalid`, 422 for a refused value,
...). Every failure becomes `AccessUnavailable` whose message carries what NetBird said; the token
never appears in a message, even if NetBird echoed it.

Which key an assignment has, and when it is replaced or removed, is decided in netbird_keys.py.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx
from pydantic import SecretStr

from gpulab_core.contracts.scheduler import ASSIGNMENT_ENDED_ALREADY, Access
from gpulab_core.errors import Conflict
from gpulab_scheduler.access.base import AccessTarget, AccessUnavailable

API_URL_ENV = "GPULAB_NETBIRD_API_URL"
API_TOKEN_ENV = "GPULAB_NETBIRD_API_TOKEN"
SETUP_KEYS_PATH = "/api/setup-keys"
PEERS_PATH = "/api/peers"
GROUPS_PATH = "/api/groups"
# An id NetBird sent (a setup key's decimal FNV hash, an xid for a peer or a group) goes into a URL
# path: only these characters, so that no reply can point a DELETE anywhere else.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
# Header values are visible ASCII (RFC 9110 field-vchar); NetBird's tokens are `nbp_` + base62.
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation)
_MAX_SHOWN = 300  # characters of NetBird's own words kept in a message
_NEVER = datetime(1, 1, 1, tzinfo=UTC)  # Go's zero time: how NetBird writes "does not expire"


def auto_groups(raw: str) -> list[str]:
    """`GPULAB_NETBIRD_AUTO_GROUPS`: comma-separated NetBird group ids; blanks ignored."""
    return [group for part in raw.split(",") if (group := part.strip())]


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A setup key NetBird made: its id (for later calls and the audit log), its name, what the user gets."""

    id: str
    name: str
    access: Access


@dataclass(frozen=True, slots=True)
class Removed:
    """What deleting an assignment's NetBird group took with it."""

    setup_keys: int
    peers: list[str]  # the peers' names


def group_name(assignment_id: object) -> str:
    """The NetBird group of one assignment's peers: the handle by which they are found and removed."""
    return f"gpulab-assignment-{assignment_id}"


class NetBird:
    """A client of the lab's NetBird: one-off setup keys that enroll the user's machine into the lab's
    NetBird network (into `auto_groups`, which the lab's NetBird policies let reach the nodes, and the
    assignment's own group), and the removal of an assignment's group, keys and peers."""

    def __init__(
        self,
        *,
        api_url: str | None,
        api_token: SecretStr | None,
        auto_groups: Sequence[str],
        setup_key_ttl_s: int,
        timeout_s: float,
        http_client: httpx.AsyncClient,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api_url = api_url
        self._token = api_token
        self._auto_groups = list(auto_groups)
        self._ttl_s = setup_key_ttl_s
        self._timeout_s = timeout_s
        self._http = http_client
        self._now = now

    def management_url(self) -> str:
        """What users give `netbird up --management-url`: the API URL's origin."""
        return self._endpoint()[0]

    async def create_key(self, target: AccessTarget, group_id: str | None = None) -> IssuedKey:
        """A one-off key for one machine, living the configured TTL but never past the assignment's end."""
        expires_in = self._expires_in(target)  # refuses an ended assignment before anything is sent
        name = f"gpulab {target.assignment_id} {target.user_email[:100]}"
        body: dict[str, Any] = {
            # Shown in NetBird's dashboard and activity log: whose key this is, for which assignment.
            "name": name,
            "type": "one-off",
            "expires_in": expires_in,
            "auto_groups": [*self._auto_groups, *([group_id] if group_id else [])],
            "usage_limit": 1,
            # A user's laptop goes offline every night; an ephemeral peer would be deleted after ~10 minutes
            # offline and the one-off key could not bring it back. Its peers are deleted when the
            # assignment ends instead (netbird_keys.py).
            "ephemeral": False,
        }
        response, origin, token = await self._send("POST", SETUP_KEYS_PATH, "create a setup key", body)
        access = self._mapped(response, origin, token)
        key_id = self._reply(response, origin, token).get("id")
        if isinstance(key_id, int) and not isinstance(key_id, bool):  # older NetBird docs show a number
            key_id = str(key_id)
        if not isinstance(key_id, str) or not _ID.fullmatch(key_id):
            raise self._failed(f"NetBird at {origin} sent a reply gpulab cannot use: no usable setup key `id`", token)
        return IssuedKey(key_id, name, access)

    async def key_state(self, key_id: str) -> str | None:
        """NetBird's `state` of a setup key (`valid`, `expired`, `revoked`, `overused`); None if it is gone."""
        response, origin, token = await self._send(
            "GET", f"{SETUP_KEYS_PATH}/{_path_id(key_id)}", "show a setup key", missing_ok=True
        )
        if response.status_code == 404:
            return None
        state = self._reply(response, origin, token).get("state")
        return state if isinstance(state, str) else "unknown"

    async def delete_key(self, key_id: str) -> None:
        await self._send("DELETE", f"{SETUP_KEYS_PATH}/{_path_id(key_id)}", "delete a setup key", missing_ok=True)

    async def create_group(self, name: str) -> str:
        """The id of a new group called `name`, or of the one that already has it (a retry after a
        crash that made the group but stored nothing)."""
        response, origin, token = await self._send(
            "POST", GROUPS_PATH, "create a group", {"name": name, "peers": []}, conflict_ok=True
        )
        if response.status_code == 409:  # NetBird: `group with name ... already exists`
            listed, origin, token = await self._send("GET", GROUPS_PATH, "list groups")
            found = [g for g in self._items(listed, origin, token) if g.get("name") == name]
            reply = found[0] if found else {}
        else:
            reply = self._reply(response, origin, token)
        group_id = reply.get("id")
        if not isinstance(group_id, str) or not _ID.fullmatch(group_id):
            raise self._failed(f"NetBird at {origin} sent a reply gpulab cannot use: no usable group `id`", token)
        return group_id

    async def remove_group(self, group_id: str) -> Removed:
        """Delete every setup key that names the group (so that no new peer can join it), every peer in
        it, then the group. Each step is safe to repeat: what is already gone is skipped."""
        listed, origin, token = await self._send("GET", SETUP_KEYS_PATH, "list setup keys")
        keys = [k for k in self._items(listed, origin, token) if group_id in (k.get("auto_groups") or [])]
        for key in keys:
            await self.delete_key(str(key.get("id")))
        listed, origin, token = await self._send("GET", PEERS_PATH, "list peers")
        peers = [
            p
            for p in self._items(listed, origin, token)
            if any(isinstance(g, dict) and g.get("id") == group_id for g in p.get("groups") or [])
        ]
        for peer in peers:
            await self._send(
                "DELETE", f"{PEERS_PATH}/{_path_id(str(peer.get('id')))}", "delete a peer", missing_ok=True
            )
        await self._send("DELETE", f"{GROUPS_PATH}/{_path_id(group_id)}", "delete a group", missing_ok=True)
        return Removed(len(keys), [_clean(str(p.get("name", "")))[:200] for p in peers])

    async def _send(
        self,
        method: str,
        path: str,
        doing: str,
        body: dict[str, Any] | None = None,
        *,
        missing_ok: bool = False,
        conflict_ok: bool = False,
    ) -> tuple[httpx.Response, str, str]:
        """(the reply, NetBird's origin, the token, to scrub from messages). Anything but a success
        (and a 404 or 409 where asked for) is `AccessUnavailable`."""
        origin, endpoint = self._endpoint(path)
        token = self._token_value()
        try:
            response = await self._http.request(
                method,
                endpoint,
                json=body,
                headers={"Authorization": f"Token {token}", "Accept": "application/json"},
                timeout=self._timeout_s,
                follow_redirects=False,  # never carry the token to wherever a redirect points
            )
        except httpx.TimeoutException:
            raise self._failed(f"NetBird at {origin} did not answer within {self._timeout_s:g} s", token) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            reason = str(exc) or type(exc).__name__
            raise self._failed(f"could not reach NetBird at {origin}: {reason}", token) from None
        allowed = (response.status_code == 404 and missing_ok) or (response.status_code == 409 and conflict_ok)
        if not response.is_success and not allowed:  # NetBird answers 200; a 201 would mean the same
            raise self._failed(
                f"NetBird at {origin} refused to {doing}: HTTP {response.status_code}{_netbird_says(response, token)}",
                token,
            )
        return response, origin, token

    def _reply(self, response: httpx.Response, origin: str, token: str) -> dict[str, Any]:
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            why = f"not a JSON object{_excerpt(response.text, token)}"
            raise self._failed(f"NetBird at {origin} sent a reply gpulab cannot use: {why}", token)
        return reply

    def _items(self, response: httpx.Response, origin: str, token: str) -> list[dict[str, Any]]:
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if not isinstance(reply, list):
            why = f"not a JSON list{_excerpt(response.text, token)}"
            raise self._failed(f"NetBird at {origin} sent a reply gpulab cannot use: {why}", token)
        return [item for item in reply if isinstance(item, dict)]

    def _endpoint(self, path: str = SETUP_KEYS_PATH) -> tuple[str, str]:
        """(origin, the URL of `path`). The origin is also what users give `netbird up --management-url`:
        NetBird serves its API and its management service on the same origin."""
        raw = (self._api_url or "").strip()
        if not raw:
            raise AccessUnavailable(
                f"NetBird access is not configured: {API_URL_ENV} is not set. An admin sets it (and "
                f"{API_TOKEN_ENV}), or picks another tunnel provider."
            )
        try:
            parts = urlsplit(raw)
            _ = parts.port  # raises ValueError for a port out of range
        except ValueError:
            parts = SplitResult("", "", "", "", "")
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
            raise AccessUnavailable(f"{API_URL_ENV} is not an http(s) URL like https://netbird.example.org")
        if parts.username is not None or parts.password is not None:
            raise AccessUnavailable(f"{API_URL_ENV} must not carry credentials: the token goes in {API_TOKEN_ENV}")
        origin = f"{parts.scheme}://{parts.netloc}"
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise AccessUnavailable(
                f"{API_URL_ENV}={origin} is plain http: the API token would cross the network in clear text; use https"
            )
        # The documented base URL is the origin (`https://api.netbird.io`); accept a trailing `/api` too.
        base = parts.path.rstrip("/").removesuffix("/api")
        return origin, f"{origin}{base}{path}"

    def _token_value(self) -> str:
        token = self._token.get_secret_value().strip() if self._token is not None else ""
        if not token:
            raise AccessUnavailable(f"NetBird access is not configured: {API_TOKEN_ENV} is not set")
        if not set(token) <= _TOKEN_CHARS:
            raise AccessUnavailable(f"{API_TOKEN_ENV} contains characters that cannot be sent in an HTTP header")
        return token

    def _expires_in(self, target: AccessTarget) -> int:
        """The configured lifetime, but never past the assignment's end: an unused key must not let
        anyone into the lab's network after the assignment is over. Never 0: NetBird reads 0 as "never
        expires"."""
        if target.expires_at is None:
            return self._ttl_s
        ends = target.expires_at if target.expires_at.tzinfo else target.expires_at.replace(tzinfo=UTC)
        remaining = math.ceil((ends - self._now()).total_seconds())
        if remaining <= 0:
            raise Conflict("the assignment has expired: there is no access to give", code=ASSIGNMENT_ENDED_ALREADY)
        return min(self._ttl_s, remaining)

    def _mapped(self, response: httpx.Response, origin: str, token: str) -> Access:
        def malformed(why: str) -> AccessUnavailable:
            return self._failed(f"NetBird at {origin} sent a reply gpulab cannot use: {why}", token)

        try:
            reply = response.json()
        except ValueError:
            raise malformed(f"not JSON{_excerpt(response.text, token)}") from None
        if not isinstance(reply, dict):
            raise malformed(f"a JSON {type(reply).__name__}, not an object")
        key = reply.get("key")
        # The plain key is an upper-case UUID today; insist only that it can be pasted as one word.
        if not isinstance(key, str) or not key or len(key) > 200 or not set(key) <= _TOKEN_CHARS or "*" in key:
            raise malformed("no usable `key` (a masked or missing key)")
        expires_raw = reply.get("expires")
        try:
            expires = datetime.fromisoformat(expires_raw) if isinstance(expires_raw, str) else None
        except ValueError:
            expires = None
        if expires is None or expires.tzinfo is None:
            raise malformed(f"`expires` is not an RFC 3339 time{_excerpt(repr(expires_raw), token)}")
        return Access(
            provider="netbird",
            setup_key=key,
            management_url=origin,
            expires_at=None if expires == _NEVER else expires.astimezone(UTC),
        )

    @staticmethod
    def _failed(message: str, token: str) -> AccessUnavailable:
        return AccessUnavailable(message.replace(token, "[token]"))


def _path_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise AccessUnavailable(f"NetBird sent an id gpulab will not put in a URL: {_clean(value)[:70]!r}")
    return value


def _clean(text: str) -> str:
    """One line of printable text: what a server sends may hold anything."""
    return "".join(ch if ch.isprintable() else " " for ch in text).strip()


def _excerpt(text: str, token: str) -> str:
    shown = _clean(text.replace(token, "[token]"))  # before cutting: no piece of the token may remain
    if not shown:
        return ""
    return ": " + (shown if len(shown) <= _MAX_SHOWN else shown[:_MAX_SHOWN] + "…")


def _netbird_says(response: httpx.Response, token: str) -> str:
    """NetBird's `{"message": ..., "code": ...}`, or the start of whatever else came back (a proxy's page)."""
    try:
        body = response.json()
    except ValueError:
        return _excerpt(response.text, token)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return _excerpt(body["message"], token)
    return _excerpt(response.text, token)
