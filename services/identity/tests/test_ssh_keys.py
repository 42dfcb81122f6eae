"""SSH keys through the service: add, list, delete; duplicates and other people's keys."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from gpulab_core.contracts.identity import SSH_KEY_MAX_BYTES
from gpulab_core.errors import RemoteError
from gpulab_devstack.testing import Stack

from .conftest import Identity
from .test_auth import make_user


def real_key(tmp_path: Path, name: str) -> tuple[str, str]:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@laptop", "-f", str(path)], check=True)
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{path}.pub"], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    return (tmp_path / f"{name}.pub").read_text(), fingerprint


async def test_add_list_delete_and_has_ssh_key(identity: Identity, migrated: Stack, tmp_path: Path) -> None:
    user_id, _ = await make_user(identity, migrated)
    line, fingerprint = real_key(tmp_path, "k1")
    key = await identity.call("ssh_keys.add", {"user_id": user_id, "public_key": line})
    assert key["type"] == "ssh-ed25519"
    assert key["fingerprint"] == fingerprint
    assert key["comment"] == "k1@laptop"
    assert (await identity.call("users.get", {"id": user_id}))["has_ssh_key"] is True
    listed = await identity.call("ssh_keys.list", {"user_id": user_id})
    assert [k["id"] for k in listed["items"]] == [key["id"]]
    await identity.call("ssh_keys.delete", {"user_id": user_id, "id": key["id"]})
    assert (await identity.call("ssh_keys.list", {"user_id": user_id}))["items"] == []
    assert (await identity.call("users.get", {"id": user_id}))["has_ssh_key"] is False
    actions = [e["action"] for e in (await identity.call("audit.list", {"actor_id": user_id}))["items"]]
    assert actions[:2] == ["ssh_key.removed", "ssh_key.added"]


async def test_a_colleague_who_registers_your_public_key_first_does_not_block_you(
    identity: Identity, migrated: Stack, tmp_path: Path
) -> None:
    # The attack: a public key is public (GitHub serves everyone's); bob registers alice's before she
    # does. Her key is hers to add all the same: uniqueness is per user.
    alice, _ = await make_user(identity, migrated)
    bob, _ = await make_user(identity, migrated)
    line, fingerprint = real_key(tmp_path, "alice")
    await identity.call("ssh_keys.add", {"user_id": bob, "public_key": line})
    key = await identity.call("ssh_keys.add", {"user_id": alice, "public_key": line})
    assert key["fingerprint"] == fingerprint
    assert (await identity.call("ssh_keys.authorized", {"user_id": alice}))["public_keys"] == [line.strip()]
    # One user still cannot hold one key twice.
    for owner in (alice, bob):
        with pytest.raises(RemoteError) as dup:
            await identity.call("ssh_keys.add", {"user_id": owner, "public_key": line})
        assert dup.value.code == "duplicate_ssh_key"
        assert len((await identity.call("ssh_keys.list", {"user_id": owner}))["items"]) == 1


async def test_invalid_key_says_why_and_nothing_is_stored(identity: Identity, migrated: Stack, tmp_path: Path) -> None:
    user_id, _ = await make_user(identity, migrated)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "priv")], check=True)
    cases = {
        (tmp_path / "priv").read_text(): "private_key",
        'command="rm -rf /" ' + real_key(tmp_path, "opt")[0]: "options_not_allowed",
        "x" * (SSH_KEY_MAX_BYTES + 1): "too_large",
        "ssh-ed25519 AAAA": "malformed",
    }
    for text, reason in cases.items():
        with pytest.raises(RemoteError) as bad:
            await identity.call("ssh_keys.add", {"user_id": user_id, "public_key": text})
        assert bad.value.code == "invalid_ssh_key"
        assert bad.value.details["reason"] == reason
    assert (await identity.call("ssh_keys.list", {"user_id": user_id}))["items"] == []


async def test_someone_elses_key_cannot_be_deleted(identity: Identity, migrated: Stack, tmp_path: Path) -> None:
    alice, _ = await make_user(identity, migrated)
    bob, _ = await make_user(identity, migrated)
    key = await identity.call("ssh_keys.add", {"user_id": alice, "public_key": real_key(tmp_path, "a")[0]})
    with pytest.raises(RemoteError) as nope:
        await identity.call("ssh_keys.delete", {"user_id": bob, "id": key["id"]})
    assert nope.value.code == "not_found"
    with pytest.raises(RemoteError):
        await identity.call("ssh_keys.delete", {"user_id": alice, "id": str(uuid.uuid4())})
    assert len((await identity.call("ssh_keys.list", {"user_id": alice}))["items"]) == 1
