"""The real agent binary, as root in a throwaway host (a private mount namespace with its own copy of
/etc and an empty /home), enforcing what the real control plane assigns: after an assignment the
Linux user exists with the user's key in authorized_keys and the sshd drop-in naming the assigned
GPUs; after revoke the account and its home are gone within one heartbeat interval. Nothing of it
reaches the machine's own /etc or /home."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from gpulab_devstack.servers import free_port, wait_for_port
from gpulab_devstack.testing import Launcher, Stack, wait_until

from .agent_support import (
    EXIT_REENROLL,
    RECORDING,
    AgentRun,
    Agents,
    Plane,
    assign_two_gpus,
    recorded_gpus,
    start_plane,
)
from .throwaway_host import (
    UID_MIN,
    ThrowawayHost,
    accounts,
    accounts_in,
    inside,
    no_sshd_reason,
    unavailable_reason,
)

pytestmark = pytest.mark.slow
INTERVAL_S = 2
JITTER = 0.1  # runloop: each interval is ±10 %


async def enrolled_and_running(
    plane: Plane, agents: Agents, folder: Path, prefix: str, management_ip: str
) -> tuple[str, ThrowawayHost, AgentRun]:
    """A new node, enrolled with its token, its agent running as root in a throwaway host and
    removing (not locking) what it takes away."""
    created = await plane.call(
        "inventory",
        "nodes.create",
        {"hostname": f"{prefix}-{uuid.uuid4().hex[:8]}", "type": "linux", "management_ip": management_ip},
    )
    node_id, enrollment = created["node"]["id"], created["enrollment"]
    enrolled = await agents.enroll(f"127.0.0.1:{plane.enroll_port}", enrollment["ca_fingerprint"], enrollment["token"])
    assert enrolled.returncode == 0, enrolled.stderr
    host = ThrowawayHost.prepare(folder / "host")
    agents.in_throwaway_host(host)
    return node_id, host, agents.run(GPULAB_ON_REVOKE="remove")


async def test_real_agent_creates_the_user_with_keys_and_removes_them_within_one_interval_of_revoke(
    services: Launcher, nc: NATS, migrated: Stack, agents: Agents, tmp_path: Path
) -> None:
    if reason := unavailable_reason() or no_sshd_reason():
        pytest.skip(f"throwaway host: {reason}")
    plane = await start_plane(services, nc, interval_s=INTERVAL_S)
    node_id, host, agent = await enrolled_and_running(plane, agents, tmp_path, "gpu-host", "10.0.0.10")
    pid = agent.proc.pid

    async def online() -> bool:
        node = await plane.call("inventory", "nodes.get", {"id": node_id})
        return bool(node["status"] == "online")

    try:
        await wait_until(online, timeout_s=15, interval_s=0.2)
    except AssertionError:
        raise AssertionError(f"not online; agent output:\n{agent.output()}") from None
    # The agent lives in a namespace of its own.
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")

    made, public_key = await assign_two_gpus(plane, migrated, tmp_path, node_id)
    name = made["linux_username"]
    keys_path = f"/home/{name}/.ssh/authorized_keys"

    def access_granted() -> bool:
        keys = inside(pid, keys_path)
        return keys.exists() and public_key in keys.read_text()

    try:
        await wait_until(access_granted, timeout_s=4 * INTERVAL_S, interval_s=0.1)
    except AssertionError:
        raise AssertionError(f"no access for {name}; agent output:\n{agent.output()}") from None

    # The account: made by gpulab, in the namespace's uid range, its home and key with the right
    # owner and modes.
    account = accounts(pid)[name]
    assert account.gecos.startswith("gpulab-managed"), account
    assert account.uid >= UID_MIN
    assert account.home == f"/home/{name}"
    home, ssh_dir, keys = inside(pid, f"/home/{name}"), inside(pid, f"/home/{name}/.ssh"), inside(pid, keys_path)
    for path, mode in ((home, 0o700), (ssh_dir, 0o700), (keys, 0o600)):
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (account.uid, mode), path
    assert [line for line in keys.read_text().splitlines() if line and not line.startswith("#")] == [public_key]
    # Soft enforcement: the user's SSH sessions see exactly the two assigned GPUs, sshd reloaded.
    uuids = [g["uuid"] for g in sorted(made["gpus"], key=lambda g: g["index"])]
    assert uuids == [u for _, u, _, _ in recorded_gpus(RECORDING)[:2]]
    drop_in = inside(pid, f"/etc/ssh/sshd_config.d/10-gpulab-soft-{name}.conf").read_text()
    assert f"Match User {name}\n\tSetEnv CUDA_VISIBLE_DEVICES={','.join(uuids)}\n" in drop_in
    assert ["systemctl", "try-reload-or-restart", "ssh.service"] in host.calls()
    # None of it is on the machine itself.
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    assert not Path(f"/home/{name}").exists()
    assert not Path(f"/etc/ssh/sshd_config.d/10-gpulab-soft-{name}.conf").exists()

    # Revoked: the account, its home and its drop-in are gone by the next heartbeat.
    await plane.call("scheduler", "assignments.revoke", {"id": made["id"]})
    revoked = time.monotonic()

    drop_in_path = inside(pid, f"/etc/ssh/sshd_config.d/10-gpulab-soft-{name}.conf")

    def removed() -> bool:
        return name not in accounts(pid) and not inside(pid, f"/home/{name}").exists() and not drop_in_path.exists()

    try:
        await wait_until(removed, timeout_s=4 * INTERVAL_S, interval_s=0.05)
    except AssertionError:
        raise AssertionError(f"{name} is still there; agent output:\n{agent.output()}") from None
    gone_after_s = time.monotonic() - revoked
    # One interval (with its jitter) until the heartbeat that brings the revocation, plus the
    # reconcile it starts (lock, kill, userdel, the drop-in and sshd's reload): well under a second.
    assert gone_after_s < INTERVAL_S * (1 + JITTER) + 1.0, f"gone after {gone_after_s:.2f}s"
    print(f"\nthrowaway host: {name} gone {gone_after_s:.2f}s after the revoke (interval {INTERVAL_S}s)")  # noqa: T201

    agent.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(agent.wait, 15) == 0, agent.output()


async def test_a_deleted_nodes_agent_removes_its_managed_accounts_before_exiting(
    services: Launcher, nc: NATS, migrated: Stack, agents: Agents, tmp_path: Path
) -> None:
    """A node that comes back after it was deleted (switched off, stolen, cut off meanwhile) finds
    its identity refused: before it exits "re-enroll needed" it takes away every account it manages
    (GPULAB_ON_REVOKE=remove: deleted with their homes), rather than applying its saved state again
    and leaving the access in place for good."""
    if reason := unavailable_reason() or no_sshd_reason():
        pytest.skip(f"throwaway host: {reason}")
    plane = await start_plane(services, nc, interval_s=INTERVAL_S)
    node_id, host, agent = await enrolled_and_running(plane, agents, tmp_path, "gpu-gone", "10.0.0.11")
    made, public_key = await assign_two_gpus(plane, migrated, tmp_path, node_id)
    name = made["linux_username"]
    keys = host.folder / "home" / name / ".ssh/authorized_keys"

    def access_granted() -> bool:
        return keys.exists() and public_key in keys.read_text()

    try:
        await wait_until(access_granted, timeout_s=30, interval_s=0.1)
    except AssertionError:
        raise AssertionError(f"no access for {name}; agent output:\n{agent.output()}") from None

    # The agent stops with the access in place (its saved state holds the assignment); meanwhile the
    # node is deleted. Stopped first, so that the access can only end through the refusal: a running
    # agent could hear of the assignment's end first.
    agent.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(agent.wait, 15) == 0, agent.output()
    assert name in accounts_in(host.folder / "etc/passwd")
    await plane.call("inventory", "nodes.delete", {"id": node_id})

    back = agents.run(GPULAB_ON_REVOKE="remove")
    assert await asyncio.to_thread(back.wait, 60) == EXIT_REENROLL, back.output()
    assert "RE-ENROLL NEEDED" in back.output()
    # Gone before it exited: the throwaway host's files outlive its processes.
    assert name not in accounts_in(host.folder / "etc/passwd"), back.output()
    assert not (host.folder / "home" / name).exists(), back.output()
    assert not list((host.folder / "etc/ssh/sshd_config.d").glob(f"*{name}*")), back.output()
    # Nothing is left that a restart without the control plane would apply again.
    assert agents.desired() is None, back.output()


async def test_without_systemd_the_agent_reloads_the_real_sshd_by_its_pid_file_and_the_login_sees_the_gpus(
    services: Launcher, nc: NATS, migrated: Stack, agents: Agents, tmp_path: Path
) -> None:
    """A node without systemd (a container, a minimal or non-systemd distribution) running OpenSSH's
    own sshd: the agent must still make the listening sshd read its drop-in, here by SIGHUP to the pid
    in sshd's PID file, or soft enforcement fails, no key is written and the user cannot log in. The
    proof is OpenSSH itself: a real login on the host's real sshd sees exactly the assigned GPUs,
    which only a reloaded sshd applies to a new connection; after the revoke it is refused."""
    if reason := unavailable_reason() or no_sshd_reason():
        pytest.skip(f"throwaway host: {reason}")
    if not shutil.which("sshd") or not shutil.which("ssh"):
        pytest.skip("needs OpenSSH's real sshd and ssh (`make test` installs openssh-server as root)")
    plane = await start_plane(services, nc, interval_s=INTERVAL_S)
    created = await plane.call(
        "inventory",
        "nodes.create",
        {"hostname": f"no-systemd-{uuid.uuid4().hex[:8]}", "type": "linux", "management_ip": "10.0.0.12"},
    )
    node_id, enrollment = created["node"]["id"], created["enrollment"]
    enrolled = await agents.enroll(f"127.0.0.1:{plane.enroll_port}", enrollment["ca_fingerprint"], enrollment["token"])
    assert enrolled.returncode == 0, enrolled.stderr
    port = free_port()
    host = ThrowawayHost.prepare(tmp_path / "host", systemd=False, sshd_port=port)
    agents.in_throwaway_host(host)
    agent = agents.run(GPULAB_ON_REVOKE="remove")
    pid = agent.proc.pid
    await asyncio.to_thread(wait_for_port, port, 30, agent.proc)
    await wait_until(lambda: host.sshd_pid() is not None, timeout_s=10, interval_s=0.1)
    sshd_pid = host.sshd_pid()
    assert not inside(pid, "/run/systemd/system").exists()

    made, public_key = await assign_two_gpus(plane, migrated, tmp_path, node_id)
    name = made["linux_username"]
    keys_path = inside(pid, f"/home/{name}/.ssh/authorized_keys")

    def access_granted() -> bool:
        return keys_path.exists() and public_key in keys_path.read_text()

    try:
        await wait_until(access_granted, timeout_s=10 * INTERVAL_S, interval_s=0.1)
    except AssertionError:
        raise AssertionError(f"no access for {name}; agent output:\n{agent.output()}") from None
    # The agent says how it reloads sshd here, and sshd was reloaded in place, not restarted.
    assert "reload sshd by SIGHUP to the pid in /run/sshd.pid" in agent.output(), agent.output()
    assert host.sshd_pid() == sshd_pid

    def login() -> subprocess.CompletedProcess[str]:
        # sshd re-executes itself on SIGHUP and listens again a moment later: a connection refused in
        # that moment is tried again.
        deadline = time.monotonic() + 10
        while True:
            done = ssh()
            if "Connection refused" not in done.stderr or time.monotonic() > deadline:
                return done
            time.sleep(0.1)

    def ssh() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "ssh", "-F", "/dev/null", "-i", str(tmp_path / "id_user"), "-p", str(port),
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
                f"{name}@127.0.0.1", 'echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"',
            ],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    uuids = [g["uuid"] for g in sorted(made["gpus"], key=lambda g: g["index"])]
    logged_in = await asyncio.to_thread(login)
    assert logged_in.returncode == 0, f"{logged_in.stderr}\nagent output:\n{agent.output()}"
    assert logged_in.stdout.strip() == f"CUDA_VISIBLE_DEVICES={','.join(uuids)}"

    await plane.call("scheduler", "assignments.revoke", {"id": made["id"]})

    def removed() -> bool:
        return name not in accounts(pid)

    try:
        await wait_until(removed, timeout_s=4 * INTERVAL_S, interval_s=0.05)
    except AssertionError:
        raise AssertionError(f"{name} is still there; agent output:\n{agent.output()}") from None
    refused = await asyncio.to_thread(login)
    assert refused.returncode == 255, refused.stdout
    assert host.sshd_pid() == sshd_pid, agent.output()

    agent.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(agent.wait, 15) == 0, agent.output()
