"""The ssh_proxy_jump access provider. The real OpenSSH client judges the SSH config (`ssh -G` prints what
it would do)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpulab_core.contracts.scheduler import ACCESS_PROVIDER_FAILED
from gpulab_core.errors import Unavailable
from gpulab_scheduler.access import AccessUnavailable, SshProxyJump

from .access_support import target

SSH = shutil.which("ssh")
needs_ssh = pytest.mark.skipif(SSH is None, reason="the OpenSSH client (ssh) is not installed")


def ssh_resolves(*args: str) -> dict[str, str]:
    """What OpenSSH would do for these arguments, without connecting: `ssh -G` prints its settings."""
    assert SSH is not None
    done = subprocess.run(
        [SSH, "-G", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10, check=True
    )
    return dict(line.partition(" ")[::2] for line in done.stdout.splitlines())


def resolved_config(config: str, alias: str, folder: Path) -> dict[str, str]:
    path = folder / "ssh_config"
    path.write_text(config)
    return ssh_resolves("-F", str(path), alias)


# ---- ssh_proxy_jump ----


@needs_ssh
@pytest.mark.parametrize(
    ("jump_host", "proxyjump"),
    [
        # No account in the setting: the hop logs in as the user's own account on the managed jump host
        # (their Linux user name), never as whatever their local user name happens to be.
        ("bastion.example.org", "alice@bastion.example.org"),
        # An account named by the admin (a shared jump account kept by hand) is kept.
        ("gpulab@bastion.example.org:2222", "gpulab@bastion.example.org:2222"),
        ("  Bastion.Example.ORG  ", "alice@bastion.example.org"),
        ("10.0.0.1:22", "alice@[10.0.0.1]:22"),  # how ssh -G prints an address with a port
        ("[fd00::1]:2222", "alice@[fd00::1]:2222"),
        ("fd00::1", "alice@[fd00::1]"),  # bare IPv6: bracketed, or ssh would read `:1` as a port
    ],
)
async def test_openssh_reads_the_config_as_the_node_behind_the_jump_host(
    jump_host: str, proxyjump: str, tmp_path: Path
) -> None:
    access = await SshProxyJump(jump_host).access(target())

    assert access.provider == "ssh_proxy_jump"
    assert access.ssh_config is not None
    seen = resolved_config(access.ssh_config, "gpulab-gpu-node-1.lab", tmp_path)
    assert seen["hostname"] == "10.20.0.5"
    assert seen["user"] == "alice"
    assert seen["proxyjump"] == proxyjump
    assert seen["port"] == "22"


@needs_ssh
async def test_the_one_line_command_means_the_same_to_openssh() -> None:
    access = await SshProxyJump("gpulab@bastion.example.org:2222").access(target())

    assert access.ssh_command == "ssh -J gpulab@bastion.example.org:2222 alice@10.20.0.5"
    argv = shlex.split(access.ssh_command)
    seen = ssh_resolves("-F", "/dev/null", *argv[1:])
    assert (seen["hostname"], seen["user"], seen["proxyjump"]) == (
        "10.20.0.5",
        "alice",
        "gpulab@bastion.example.org:2222",
    )


@needs_ssh
async def test_an_ipv6_node_is_reached_by_config_and_by_command(tmp_path: Path) -> None:
    access = await SshProxyJump("[fd00::1]:2222").access(target(management_ip="FD00:0::5"))

    assert access.ssh_config is not None
    assert access.ssh_command is not None
    assert resolved_config(access.ssh_config, "gpulab-gpu-node-1.lab", tmp_path)["hostname"] == "fd00::5"
    assert access.ssh_command == "ssh -J 'alice@[fd00::1]:2222' alice@fd00::5"  # `[` is a shell glob character
    seen = ssh_resolves("-F", "/dev/null", *shlex.split(access.ssh_command)[1:])
    assert (seen["hostname"], seen["user"], seen["proxyjump"]) == ("fd00::5", "alice", "alice@[fd00::1]:2222")


@needs_ssh
@needs_ssh
@pytest.mark.parametrize("port", [2222, 1, 65535])
async def test_a_node_whose_sshd_is_not_on_22_is_reached_on_its_port_by_config_and_by_command(
    port: int, tmp_path: Path
) -> None:
    access = await SshProxyJump("bastion.example.org").access(target(ssh_port=port))

    assert access.ssh_config is not None
    assert access.ssh_command is not None
    seen = resolved_config(access.ssh_config, "gpulab-gpu-node-1.lab", tmp_path)
    assert (seen["hostname"], seen["port"], seen["proxyjump"]) == ("10.20.0.5", str(port), "alice@bastion.example.org")
    assert access.ssh_command == f"ssh -J alice@bastion.example.org -p {port} alice@10.20.0.5"
    by_command = ssh_resolves("-F", "/dev/null", *shlex.split(access.ssh_command)[1:])
    assert (by_command["hostname"], by_command["port"]) == ("10.20.0.5", str(port))


@pytest.mark.parametrize("port", [0, 65536])
async def test_a_port_that_is_not_one_is_refused_rather_than_written(port: int) -> None:
    with pytest.raises(AccessUnavailable, match="is not a port"):
        await SshProxyJump("bastion").access(target(ssh_port=port))


async def test_the_alias_is_lower_case_because_ssh_matches_host_patterns_case_sensitively(tmp_path: Path) -> None:
    access = await SshProxyJump("bastion").access(target(node_hostname="GPU-Node-7"))

    assert access.ssh_config is not None
    assert "Host gpulab-gpu-node-7\n" in access.ssh_config
    assert resolved_config(access.ssh_config, "gpulab-gpu-node-7", tmp_path)["hostname"] == "10.20.0.5"


async def test_the_config_says_until_when_and_has_nothing_the_user_did_not_ask_for() -> None:
    expires = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    access = await SshProxyJump("bastion").access(target(expires_at=expires))

    assert access.expires_at == expires
    assert access.ssh_config is not None
    directives = [line.split()[0] for line in access.ssh_config.splitlines() if line and not line.startswith("#")]
    assert directives == ["Host", "HostName", "User", "ProxyJump"]  # no IdentitiesOnly without an IdentityFile
    assert f"assignment {target().assignment_id} on gpu-node-1.lab, until 2031-05-06T07:08:09+00:00" in (
        access.ssh_config
    )


@pytest.mark.parametrize("jump_host", [None, "", "   "])
async def test_without_a_jump_host_ssh_access_is_unavailable_and_says_which_setting(jump_host: str | None) -> None:
    with pytest.raises(AccessUnavailable) as caught:
        await SshProxyJump(jump_host).access(target())

    assert caught.value.code == ACCESS_PROVIDER_FAILED
    assert isinstance(caught.value, Unavailable)
    assert "GPULAB_SSH_JUMP_HOST is not set" in caught.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("node_hostname", "node1\nProxyCommand touch /tmp/pwned"),
        ("node_hostname", "node1\n"),
        ("node_hostname", "node 1"),
        ("node_hostname", "node*"),
        ("node_hostname", "node1,other"),
        ("node_hostname", "!node1"),
        ("node_hostname", '"node1"'),
        ("node_hostname", "-oProxyCommand=x"),
        ("node_hostname", "node%h"),
        ("node_hostname", ""),
        ("linux_username", "alice\nHost *"),
        ("linux_username", "alice bob"),
        ("linux_username", "-oProxyCommand=x"),
        ("linux_username", "alice%r"),
        ("linux_username", "alice${HOME}"),
        ("linux_username", "'alice'"),
        ("linux_username", "root@evil"),
        ("linux_username", "Alice"),
        ("linux_username", "a" * 33),
        ("management_ip", "10.20.0.5\nUser root"),
        ("management_ip", "10.20.0.5 -oProxyCommand=x"),
        ("management_ip", "fe80::1%eth0"),
        ("management_ip", "node.example.org"),
        ("management_ip", ""),
    ],
)
async def test_a_value_that_could_change_the_config_is_refused(field: str, value: str) -> None:
    with pytest.raises(AccessUnavailable) as caught:
        await SshProxyJump("bastion").access(target(**{field: value}))

    assert caught.value.code == ACCESS_PROVIDER_FAILED
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    "jump_host",
    [
        "bastion\nProxyCommand touch /tmp/pwned",
        "bastion -oProxyCommand=x",
        "-oProxyCommand=x",
        "bastion,other",
        "a@b@bastion",
        "@bastion",
        "user@",
        "bastion:0",
        "bastion:65536",
        "bastion:22x",
        "bastion:",
        "[fd00::1",
        "[bastion]:22",
        "[fe80::1%eth0]:22",
        "ssh://bastion",
        "bastion%h",
        '"bastion"',
        "none",
    ],
)
async def test_a_jump_host_that_could_change_the_config_is_refused(jump_host: str) -> None:
    with pytest.raises(AccessUnavailable) as caught:
        await SshProxyJump(jump_host).access(target())

    assert caught.value.code == ACCESS_PROVIDER_FAILED
    assert "GPULAB_SSH_JUMP_HOST=" in caught.value.message
    assert "\n" not in caught.value.message


# ---- container mode: root in the assignment's container, on the port its node reported ----


@needs_ssh
@pytest.mark.parametrize(
    ("jump_host", "node_ip", "ssh_port", "proxyjump"),
    [
        # ssh -G prints a hop's address in brackets
        ("bastion.example.org", "10.20.0.5", 22, "alice@bastion.example.org,alice@[10.20.0.5]"),
        (
            "gpulab@bastion.example.org:2222",
            "10.20.0.5",
            2200,
            "gpulab@bastion.example.org:2222,alice@[10.20.0.5]:2200",
        ),
        ("bastion.example.org", "FD00::5", 22, "alice@bastion.example.org,alice@[fd00::5]"),
        ("bastion.example.org", "fd00::5", 2200, "alice@bastion.example.org,alice@[fd00::5]:2200"),
    ],
)
@pytest.mark.parametrize("port", [32768, 1, 65535])
async def test_a_container_assignments_config_reaches_its_container_on_the_reported_port(
    jump_host: str, node_ip: str, ssh_port: int, proxyjump: str, port: int, tmp_path: Path
) -> None:
    access = await SshProxyJump(jump_host).access(target(container_port=port, management_ip=node_ip, ssh_port=ssh_port))

    assert access.ssh_config is not None
    assert access.ssh_command is not None
    seen = resolved_config(access.ssh_config, "gpulab-gpu-node-1.lab", tmp_path)
    want = ("127.0.0.1", str(port), "root", proxyjump, "gpulab-gpu-node-1.lab")
    assert (seen["hostname"], seen["port"], seen["user"], seen["proxyjump"], seen["hostkeyalias"]) == want
    by_command = ssh_resolves("-F", "/dev/null", *shlex.split(access.ssh_command)[1:])
    assert (
        by_command["hostname"],
        by_command["port"],
        by_command["user"],
        by_command["proxyjump"],
        by_command["hostkeyalias"],
    ) == want


@pytest.mark.parametrize("port", [0, 65536])
async def test_a_container_port_that_is_not_one_is_refused_rather_than_written(port: int) -> None:
    with pytest.raises(AccessUnavailable, match="container's SSH port .* is not a port"):
        await SshProxyJump("bastion").access(target(container_port=port))
