"""How a user reaches an assignment's node: the `TunnelProvider`s, picked by the Environment's
`tunnel_provider`.

Decisions (see docs/adr/0012-access-providers.md):
- `ssh_proxy_jump` emits an OpenSSH `Host` block (`gpulab-<node host name>`: HostName, User, ProxyJump)
  and the same as one command (`ssh -J <jump> <user>@<ip>`). No `IdentityFile`/`IdentitiesOnly`: gpulab
  does not know where the user keeps the private key, and ssh already offers the default keys and the
  agent's; a comment says what to add otherwise. Host key checking keeps OpenSSH's defaults.
  Every value is validated against a strict pattern and refused otherwise, never quoted into shape: a
  newline, a space, a quote, `%` or a pattern character could add or change a directive.
- `netbird` gives each assignment one one-off setup key (`usage_limit` 1, not ephemeral) made through
  NetBird's REST API and stored: shown again on every view while NetBird says it is valid, replaced only
  once used or expired, living `GPULAB_NETBIRD_SETUP_KEY_TTL_S` but never past the assignment's end,
  placed in `GPULAB_NETBIRD_AUTO_GROUPS` and the assignment's own NetBird group, whose keys and peers are
  deleted when the assignment ends (netbird_keys.py). Every issuance is audited. The management URL
  given to the user is the API URL's origin.
- Whatever goes wrong (not configured, NetBird unreachable, slow, refusing, answering nonsense, a value
  that cannot be made safe) is `AccessUnavailable`, code `access_provider_unavailable`, with a message
  that says what to fix and never contains the NetBird token.
"""

from __future__ import annotations

import httpx

from gpulab_core.contracts.scheduler import TunnelProvider as TunnelProviderName
from gpulab_scheduler.access.base import AccessTarget, AccessUnavailable, TunnelProvider
from gpulab_scheduler.access.netbird import NetBird, auto_groups
from gpulab_scheduler.access.ssh import SshProxyJump, parse_jump_host
from gpulab_scheduler.config import Settings

__all__ = [
    "AccessTarget",
    "AccessUnavailable",
    "NetBird",
    "SshProxyJump",
    "TunnelProvider",
    "netbird_client",
    "parse_jump_host",
    "provider_for",
]


def netbird_client(settings: Settings, http_client: httpx.AsyncClient) -> NetBird:
    """The lab's NetBird. Cheap: nothing is checked or contacted until a call."""
    return NetBird(
        api_url=settings.netbird_api_url,
        api_token=settings.netbird_api_token,
        auto_groups=auto_groups(settings.netbird_auto_groups),
        setup_key_ttl_s=settings.netbird_setup_key_ttl_s,
        timeout_s=settings.netbird_timeout_s,
        http_client=http_client,
    )


def provider_for(name: TunnelProviderName | str, settings: Settings) -> TunnelProvider:
    """The stateless provider an Environment names (`netbird` keeps state: netbird_keys.view)."""
    if name == "ssh_proxy_jump":
        return SshProxyJump(settings.ssh_jump_host)
    raise AccessUnavailable(f"unknown tunnel provider {name!r}: expected ssh_proxy_jump or netbird")
