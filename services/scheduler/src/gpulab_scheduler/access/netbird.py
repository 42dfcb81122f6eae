"""`netbird`: a one-off NetBird setup key per request, made through NetBird's management REST API.

`POST <api>/api/setup-keys` with `Authorization: Token <personal access token>` and the documented
`CreateSetupKeyRequest` body; the reply (`SetupKeyClear`, HTTP 200) carries the plain key, shown only at
creation. Errors come back as `{"message": ..., "code": <HTTP status>}` (401 `token invalid`, 422 for a
refused value, ...). Every failure becomes `AccessUnavailable` whose message carries what NetBird said;
the token never appears in a message, even if NetBird echoed it.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Sequence
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
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
# Header values are visible ASCII (RFC 9110 field-vchar); NetBird's tokens are `nbp_` + base62.
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation)
_MAX_SHOWN = 300  # characters of NetBird's own words kept in a message
_NEVER = datetime(1, 1, 1, tzinfo=UTC)  # Go's zero time: how NetBird writes "does not expire"


def auto_groups(raw: str) -> list[str]:
    """`GPULAB_NETBIRD_AUTO_GROUPS`: comma-separated NetBird group ids; blanks ignored."""
    return [group for part in raw.split(",") if (group := part.strip())]


class NetBird:
    """Creates, per request, a one-off setup key that enrolls the user's machine into the lab's NetBird
    network (into `auto_groups`, which the lab's NetBird policies let reach the nodes)."""

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

    async def access(self, target: AccessTarget) -> Access:
        origin, endpoint = self._endpoint()
        token = self._token_value()
        body: dict[str, Any] = {
            # Shown in NetBird's dashboard and activity log: whose key this is, for which assignment.
            "name": f"gpulab {target.assignment_id} {target.user_email[:100]}",
            "type": "one-off",
            "expires_in": self._expires_in(target),
            "auto_groups": self._auto_groups,
            "usage_limit": 1,
            # A user's laptop goes offline every night; an ephemeral peer would be deleted after ~10 minutes
            # offline and the one-off key could not bring it back.
            "ephemeral": False,
        }
        try:
            response = await self._http.post(
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
        if not response.is_success:  # NetBird answers 200; a 201 would mean the same
            raise self._failed(
                f"NetBird at {origin} refused to create a setup key: HTTP {response.status_code}"
                f"{_netbird_says(response, token)}",
                token,
            )
        return self._mapped(response, origin, token)

    def _endpoint(self) -> tuple[str, str]:
        """(origin, setup-keys URL). The origin is also what users give `netbird up --management-url`:
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
        return origin, f"{origin}{base}{SETUP_KEYS_PATH}"

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
