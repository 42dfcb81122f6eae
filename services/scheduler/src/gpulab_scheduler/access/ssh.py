"""`ssh_proxy_jump`: an OpenSSH client config block and the equivalent one-line command.

Every value that goes into the config is checked against a strict pattern (or parsed as an IP address)
before it is written, and refused otherwise: ssh_config separates arguments with whitespace, treats a
newline as the start of a new directive, expands `%` tokens in several keywords and reads `*`, `?`, `!`
and `,` as patterns in `Host`. Quoting could not make a newline safe, so nothing is quoted: a value that
would need quoting never gets there. The one-line command is additionally shell-quoted, which changes
nothing for these values except bracketed IPv6 jump hosts (`[` is a shell glob character).

Container mode (`AccessTarget.container_port`): the login is the assignment's container's sshd, as
`root`, published on the node's 127.0.0.1 only; the node's account only forwards there (`PermitOpen
127.0.0.1:<port>`, agent/internal/enforce/container). So `HostName 127.0.0.1` and `Port <port>`, with the
node as the last hop of `ProxyJump` (`<jump>,<user>@<node>[:<ssh_port>]`), and `HostKeyAlias <alias>`:
without it every container of every node would be `[127.0.0.1]:<port>` in known_hosts, and two nodes
whose engines chose the same port would clash.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import uuid

from gpulab_core.contracts.inventory import DEFAULT_SSH_PORT
from gpulab_core.contracts.scheduler import Access
from gpulab_scheduler.access.base import AccessTarget, AccessUnavailable

JUMP_HOST_ENV = "GPULAB_SSH_JUMP_HOST"

# RFC 1123 host names (as inventory accepts them), checked with fullmatch: `$` would accept a trailing newline.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_MAX_DNS_NAME = 253
# The portable subset of what useradd accepts (POSIX portable file name characters, not starting with
# `-` or `.`), at most 32 characters (the traditional utmp limit).
_LINUX_USERNAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
# The jump host's account is the admin's choice, not ours: allow upper case, still nothing ssh interprets.
_JUMP_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_BRACKETED_V6 = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}))?")
ALIAS_PREFIX = "gpulab-"
# The account inside a container-mode assignment's container (its sshd allows root by key only).
CONTAINER_USER = "root"
CONTAINER_HOST = "127.0.0.1"  # where the container's sshd is published on the node, and all PermitOpen allows


def _shown(value: str) -> str:
    """A refused value, for a message: repr escapes newlines and quotes; the length is bounded."""
    return repr(value if len(value) <= 80 else value[:80] + "…")


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    # A zone (`fe80::1%eth0`) means nothing on the user's machine, and `%` starts an ssh token.
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        return None
    return ip


def _dns_name(value: str) -> str | None:
    name = value.lower()
    return name if len(name) <= _MAX_DNS_NAME and _DNS_NAME.fullmatch(name) else None


def _port(value: str) -> str | None:
    return value if value.isascii() and value.isdigit() and 1 <= int(value) <= 65535 else None


def parse_jump_host(raw: str) -> str:
    """`[user@]host[:port]` (host: a DNS name, an IPv4 address or an IPv6 address, bracketed when a port
    follows), normalized: lower-case host, IPv6 always bracketed. Raises `AccessUnavailable` otherwise."""
    value = raw.strip()
    refused = AccessUnavailable(
        f"{JUMP_HOST_ENV}={_shown(raw)} is not a valid jump host: expected [user@]host[:port], e.g. "
        "gpulab@bastion.example.org:2222 (letters, digits, '.', '-', '_'; IPv6 in brackets)"
    )
    user, at, rest = value.rpartition("@")
    if at and not _JUMP_USER.fullmatch(user):
        raise refused
    host: str | None
    port: str | None = None
    if rest.startswith("["):
        bracketed = _BRACKETED_V6.fullmatch(rest)
        ip = _ip(bracketed.group(1)) if bracketed else None
        if bracketed is None or not isinstance(ip, ipaddress.IPv6Address):
            raise refused
        host = f"[{ip}]"
        if bracketed.group(2) is not None:
            port = _port(bracketed.group(2))
            if port is None:
                raise refused
    elif isinstance(ip := _ip(rest), ipaddress.IPv6Address):
        host = f"[{ip}]"  # a bare IPv6 address: ssh would read its last group as a port
    else:
        name, colon, port_text = rest.partition(":")
        host = str(ip) if (ip := _ip(name)) is not None else _dns_name(name)
        if colon:
            port = _port(port_text)
            if port is None:
                raise refused
        # `ProxyJump none` would mean "no jump host": the user would try to reach the node directly.
        if host is None or host == "none":
            raise refused
    return (f"{user}@" if at else "") + host + (f":{port}" if port else "")


def jump_hop(jump_host: str, linux_username: str) -> str:
    """The ProxyJump value: the jump host with the account the hop logs in as. Without one, ssh would
    log in to the jump host as the person's local user name, which is nobody's account there. The
    managed jump host (a node of type `jump`, docs/adr/0017-managed-jump-host.md) keeps an account per
    user under the same Linux user name as on the nodes; an account named in GPULAB_SSH_JUMP_HOST (a
    jump host kept by hand, shared by everyone) is kept as the admin wrote it."""
    return jump_host if "@" in jump_host else f"{linux_username}@{jump_host}"


class SshProxyJump:
    """Reach the node's management address through one SSH jump host (`GPULAB_SSH_JUMP_HOST`)."""

    def __init__(self, jump_host: str | None) -> None:
        self._jump_host = jump_host

    async def access(self, target: AccessTarget) -> Access:
        if not self._jump_host or not self._jump_host.strip():
            raise AccessUnavailable(
                f"SSH access is not configured: {JUMP_HOST_ENV} is not set. An admin sets it to the jump "
                "host users connect through ([user@]host[:port]), or picks another tunnel provider."
            )
        jump_host = parse_jump_host(self._jump_host)
        alias = self.alias(target.node_hostname)
        user = target.linux_username
        if not _LINUX_USERNAME.fullmatch(user):
            raise AccessUnavailable(f"the Linux user name {_shown(user)} cannot be written into an SSH config")
        if not 1 <= target.ssh_port <= 65535:
            raise AccessUnavailable(f"the node's SSH port {target.ssh_port} is not a port")
        jump = jump_hop(jump_host, user)
        ip = _ip(target.management_ip)
        if ip is None:
            raise AccessUnavailable(
                f"the node's management address {_shown(target.management_ip)} is not a plain IP address"
            )
        if target.container_port is not None and not 1 <= target.container_port <= 65535:
            raise AccessUnavailable(f"the container's SSH port {target.container_port} is not a port")
        until = f", until {target.expires_at.isoformat()}" if target.expires_at else ""
        try:  # even the comment line must stay one line
            assignment = uuid.UUID(str(target.assignment_id))
        except ValueError:
            raise AccessUnavailable(f"the assignment id {_shown(str(target.assignment_id))} is not a UUID") from None
        header = [
            f"# gpulab: assignment {assignment} on {alias.removeprefix(ALIAS_PREFIX)}{until}",
            "# ssh offers your default keys (~/.ssh/id_ed25519, ...). If the private key of the public key",
            "# you uploaded is elsewhere, add to this block:  IdentityFile ~/.ssh/<that key>",
        ]
        if target.container_port is not None:
            return self._container(target, target.container_port, alias, header, jump, ip)
        config = "\n".join(
            [
                *header,
                f"Host {alias}",
                f"    HostName {ip}",
                f"    User {user}",
                *([f"    Port {target.ssh_port}"] if target.ssh_port != DEFAULT_SSH_PORT else []),
                f"    ProxyJump {jump}",
                "",
            ]
        )
        port = ["-p", str(target.ssh_port)] if target.ssh_port != DEFAULT_SSH_PORT else []
        command = shlex.join(["ssh", "-J", jump, *port, f"{user}@{ip}"])
        return Access(provider="ssh_proxy_jump", ssh_config=config, ssh_command=command, expires_at=target.expires_at)

    @staticmethod
    def _container(
        target: AccessTarget,
        port: int,
        alias: str,
        header: list[str],
        jump: str,
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    ) -> Access:
        """Container mode: root in the assignment's container, through the jump host and the node."""
        host = f"[{ip}]" if isinstance(ip, ipaddress.IPv6Address) else str(ip)
        node_hop = f"{target.linux_username}@{host}" + (
            f":{target.ssh_port}" if target.ssh_port != DEFAULT_SSH_PORT else ""
        )
        chain = f"{jump},{node_hop}"
        config = "\n".join(
            [
                *header,
                "# You are root in the assignment's own container on the node; the node only forwards to it.",
                f"Host {alias}",
                f"    HostName {CONTAINER_HOST}",
                f"    Port {port}",
                f"    User {CONTAINER_USER}",
                f"    HostKeyAlias {alias}",
                f"    ProxyJump {chain}",
                "",
            ]
        )
        command = shlex.join(
            [
                "ssh",
                "-J",
                chain,
                "-p",
                str(port),
                "-o",
                f"HostKeyAlias={alias}",
                f"{CONTAINER_USER}@{CONTAINER_HOST}",
            ]
        )
        return Access(provider="ssh_proxy_jump", ssh_config=config, ssh_command=command, expires_at=target.expires_at)

    @staticmethod
    def alias(node_hostname: str) -> str:
        """`gpulab-<host name>`, lower case: ssh matches `Host` patterns case-sensitively against what the
        user types, and host names are case-insensitive."""
        name = _dns_name(node_hostname)
        if name is None:
            raise AccessUnavailable(
                f"the node's host name {_shown(node_hostname)} cannot be written into an SSH config "
                "(RFC 1123 names only: letters, digits, '-' and '.')"
            )
        return ALIAS_PREFIX + name
