"""Access that works for real and really ends, proven with OpenSSH itself (issue 12, finding 9).

As root, two throwaway hosts without systemd (tests/throwaway_host.py), each with the real agent
binary and a real `sshd` started before the agent, which reloads it through its PID file: a GPU node,
and the jump host (a node of type `jump`, whose agent keeps one forwarding-only account per user:
docs/adr/0017-managed-jump-host.md). The user logs
in the way a new user would: `ssh -F <config> gpulab-<node>`, where the config is exactly what the API
generated (`assignments.access`), followed by the user's own `Host *` lines (their key, and no host key
prompt for these throwaway hosts). `echo $CUDA_VISIBLE_DEVICES` prints exactly the assigned GPUs'
UUIDs. After the revoke, and after the node is deleted, the same login is refused within one
heartbeat interval. Not root: skipped, saying why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from gpulab_devstack.servers import free_port
from gpulab_devstack.testing import Launcher, Stack, wait_until

from .agent_support import RECORDING, AgentRun, Agents, Plane, assign_two_gpus, recorded_gpus, start_plane
from .throwaway_host import ThrowawayHost, inside, no_sshd_reason, unavailable_reason

pytestmark = pytest.mark.slow
INTERVAL_S = 2
JITTER = 0.1  # runloop: each interval is ±10 %
# One ssh attempt through the jump host on a loaded 2-core machine: the slack on top of the interval.
LOGIN_SLACK_S = 2.0
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@pytest.fixture
def jump_agents(agent_binary: Path, tmp_path: Path) -> Iterator[Agents]:
    made = Agents(agent_binary, tmp_path / "jump-agent", RECORDING)
    yield made
    made.close()


async def enrolled(plane: Plane, agents: Agents, folder: Path, sshd_port: int, **node: Any) -> tuple[str, AgentRun]:
    """A node enrolled and its agent running in a throwaway host without systemd whose real sshd
    (started before the agent, on 127.0.0.1:sshd_port) the agent reloads through its PID file."""
    created = await plane.call("inventory", "nodes.create", node)
    node_id, enrollment = created["node"]["id"], created["enrollment"]
    done = await agents.enroll(f"127.0.0.1:{plane.enroll_port}", enrollment["ca_fingerprint"], enrollment["token"])
    assert done.returncode == 0, done.stderr
    agents.in_throwaway_host(ThrowawayHost.prepare(folder, systemd=False, sshd_port=sshd_port))
    agent = agents.run(GPULAB_ON_REVOKE="remove")

    async def online() -> bool:  # and so its throwaway host is made: its /run, /etc and /home are in place
        return bool((await plane.call("inventory", "nodes.get", {"id": node_id}))["status"] == "online")

    try:
        await wait_until(online, timeout_s=30, interval_s=0.2)
    except AssertionError:
        raise AssertionError(f"not online; agent output:\n{agent.output()}") from None
    return node_id, agent


def client_config(generated: str, key: Path) -> str:
    """What the user saves: the API's config as it came, then their own lines for every host."""
    return generated + "\n".join(
        [
            "Host *",
            f"    IdentityFile {key}",
            "    IdentitiesOnly yes",
            "    BatchMode yes",
            "    StrictHostKeyChecking no",
            "    UserKnownHostsFile /dev/null",
            "    LogLevel ERROR",
            "    ConnectTimeout 5",
            "",
        ]
    )


def login(config: Path, alias: str, command: str = "echo $CUDA_VISIBLE_DEVICES") -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(config.parent)}  # no agent, no ~/.ssh of root's
    return subprocess.run(
        ["ssh", "-F", str(config), alias, command], env=env, capture_output=True, text=True, timeout=30, check=False
    )


async def logs_in(config: Path, alias: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(login, config, alias)


async def access_for(plane: Plane, made: dict[str, Any], key: Path, folder: Path) -> tuple[Path, str]:
    """The API's SSH config for the assignment, saved as the user would: (the file, the host alias)."""
    got = await plane.call("scheduler", "assignments.access", {"id": made["id"], "user_id": made["user_id"]})
    assert got["provider"] == "ssh_proxy_jump", got
    config = folder / "ssh_config"
    config.write_text(client_config(got["ssh_config"], key))
    config.chmod(0o600)
    alias = next(line.split()[1] for line in got["ssh_config"].splitlines() if line.startswith("Host "))
    return config, alias


async def refused_within(config: Path, alias: str, since: float, what: str, outputs: str) -> tuple[float, str]:
    """Seconds from `since` until a login attempt ended refused (counted to the attempt's end, so an
    upper bound), and ssh's words; fails past one interval (with its jitter) and the slack of one login."""
    deadline = INTERVAL_S * (1 + JITTER) + LOGIN_SLACK_S
    while True:
        attempt = await logs_in(config, alias)
        if attempt.returncode != 0:
            refused_after = time.monotonic() - since
            assert refused_after <= deadline, f"{what}: refused only {refused_after:.2f}s later\n{outputs}"
            return refused_after, attempt.stderr.strip()
        assert time.monotonic() - since <= deadline, f"{what}: still logs in\n{attempt.stdout}\n{outputs}"
        await asyncio.sleep(0.1)


async def test_a_user_logs_in_through_the_managed_jump_host_with_the_generated_config_and_is_refused_after_revoke_and_node_delete(  # noqa: E501
    services: Launcher,
    nc: NATS,
    migrated: Stack,
    agents: Agents,
    jump_agents: Agents,
    tmp_path: Path,
) -> None:
    if reason := unavailable_reason() or no_sshd_reason():
        pytest.skip(f"throwaway host: {reason}")
    if shutil.which("ssh") is None:
        pytest.skip("needs OpenSSH's client")
    node_port, jump_port = free_port(), free_port()
    plane = await start_plane(services, nc, interval_s=INTERVAL_S, jump_host=f"127.0.0.1:{jump_port}")
    name = f"gpu-sshd-{uuid.uuid4().hex[:8]}"
    node_id, node_agent = await enrolled(
        plane,
        agents,
        tmp_path / "node-host",
        node_port,
        hostname=name,
        type="linux",
        management_ip="127.0.0.1",
        ssh_port=node_port,
    )
    jump_id, jump_agent = await enrolled(
        plane,
        jump_agents,
        tmp_path / "jump-host",
        jump_port,
        hostname=f"jump-{name}",
        type="jump",
        management_ip="127.0.0.1",
    )

    def outputs() -> str:
        logs = [("node agent", node_agent.output()), ("jump agent", jump_agent.output())]
        return "\n".join(f"--- {title} ---\n{text[-4000:]}" for title, text in logs)

    # --- access that works ---
    first_dir = tmp_path / "ada"
    first_dir.mkdir()
    made, public_key = await assign_two_gpus(plane, migrated, first_dir, node_id)
    user = made["linux_username"]
    drop_in = inside(node_agent.proc.pid, f"/etc/ssh/sshd_config.d/10-gpulab-soft-{user}.conf")

    async def applied() -> bool:
        got = await plane.call("scheduler", "assignments.get", {"id": made["id"]})
        return bool(got["node_state"] == "applied")

    try:
        await wait_until(applied, timeout_s=8 * INTERVAL_S, interval_s=0.2)
    except AssertionError:
        raise AssertionError(f"the node never applied {made['id']}\n{outputs()}") from None
    # The node's sshd was running before the assignment: the user's SetEnv reaches it only through
    # the agent's reload (no systemd here: SIGHUP to the pid in /run/sshd.pid).
    assert drop_in.exists()
    assert "will reload sshd by SIGHUP to the pid in /run/sshd.pid" in node_agent.output()

    jump_keys = inside(jump_agent.proc.pid, f"/home/{user}/.ssh/authorized_keys")

    def jump_ready() -> bool:
        return jump_keys.exists() and public_key.split()[1] in jump_keys.read_text()

    try:
        await wait_until(jump_ready, timeout_s=8 * INTERVAL_S, interval_s=0.2)
    except AssertionError:
        raise AssertionError(f"no jump account for {user}\n{outputs()}") from None
    assert f'restrict,port-forwarding,permitopen="127.0.0.1:{node_port}" ' in jump_keys.read_text()

    key = first_dir / "id_user"
    config, alias = await access_for(plane, made, key, first_dir)
    generated = config.read_text()
    assert (
        f"ProxyJump {user}@[127.0.0.1]:{jump_port}\n" in generated
        or f"ProxyJump {user}@127.0.0.1:{jump_port}\n" in generated
    )
    assert f"    Port {node_port}\n" in generated
    uuids = [g["uuid"] for g in sorted(made["gpus"], key=lambda g: g["index"])]
    assert set(uuids) <= {u for _, u, _, _ in recorded_gpus(RECORDING)}
    got = await logs_in(config, alias)
    assert got.returncode == 0, f"login refused: {got.stderr}\n{outputs()}"
    assert got.stdout == ",".join(uuids) + "\n"
    # The jump account forwards, nothing more: no command, no shell.
    shell = await asyncio.to_thread(
        subprocess.run,
        ["ssh", "-F", str(config), "-p", str(jump_port), f"{user}@127.0.0.1", "echo", "shell"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(first_dir)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "shell" not in shell.stdout, shell

    # --- revoked: refused within one heartbeat interval ---
    await plane.call("scheduler", "assignments.revoke", {"id": made["id"]})
    after_revoke, revoke_refusal = await refused_within(config, alias, time.monotonic(), "after the revoke", outputs())

    # --- a new assignment on the node, then the node is deleted: refused within one interval ---
    second_dir = tmp_path / "bob"
    second_dir.mkdir()
    again, _ = await assign_two_gpus(plane, migrated, second_dir, node_id)
    config2, alias2 = await access_for(plane, again, second_dir / "id_user", second_dir)

    async def works() -> bool:
        return (await logs_in(config2, alias2)).returncode == 0

    try:
        await wait_until(works, timeout_s=8 * INTERVAL_S, interval_s=0.3)
    except AssertionError:
        raise AssertionError(f"the second user never logged in\n{outputs()}") from None
    await plane.call("inventory", "nodes.delete", {"id": node_id})
    after_delete, delete_refusal = await refused_within(
        config2, alias2, time.monotonic(), "after the node's deletion", outputs()
    )
    print(  # noqa: T201
        f"\nreal sshd: refused {after_revoke:.2f}s after the revoke and {after_delete:.2f}s after the node's "
        f"deletion (interval {INTERVAL_S}s); jump node {jump_id}\nssh after the revoke: {revoke_refusal}\n"
        f"ssh after the deletion: {delete_refusal}\n{outputs()}"
    )
