"""Shared by the SSH key parser tests: real keys made by ssh-keygen, wire-format helpers."""

from __future__ import annotations

import base64
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpulab_identity.ssh_keys.parse import InvalidSshKey, parse_public_key

SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
REASONS = {
    "too_large",
    "comment_too_long",
    "private_key",
    "options_not_allowed",
    "multiple_lines",
    "unsupported_type",
    "weak_key",
    "malformed",
    "certificate",
    "pem_format",
    "empty",
}
# ssh-keygen's arguments for every key the tests need: name -> (type, bits or None).
GENERATED: dict[str, tuple[str, str | None]] = {
    "ed25519": ("ed25519", None),
    "ecdsa256": ("ecdsa", "256"),
    "ecdsa384": ("ecdsa", "384"),
    "ecdsa521": ("ecdsa", "521"),
    "rsa3072": ("rsa", "3072"),
    "rsa4096": ("rsa", "4096"),
    "rsa2048": ("rsa", "2048"),
    "ca": ("ed25519", None),
}


def keygen(*args: str) -> str:
    return subprocess.run([SSH_KEYGEN, *args], check=True, capture_output=True, text=True).stdout


@dataclass(frozen=True)
class Keys:
    folder: Path

    def pub(self, name: str) -> str:
        return (self.folder / f"{name}.pub").read_text()

    def private(self, name: str) -> str:
        return (self.folder / name).read_text()

    def blob(self, name: str) -> bytes:
        return base64.b64decode(self.pub(name).split()[1])


def make_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("ssh-keys")
    # RSA 4096 takes a second or so: generate everything at once.
    running = []
    for name, (key_type, bits) in GENERATED.items():
        size = ["-b", bits] if bits else []
        command = [SSH_KEYGEN, "-q", "-t", key_type, *size, "-N", "", "-C", f"{name}@lab", "-f", str(folder / name)]
        running.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for process in running:
        assert process.wait(timeout=60) == 0
    return Keys(folder)


def fingerprint_by_ssh_keygen(path: Path) -> tuple[int, str]:
    """(bits, fingerprint) from `ssh-keygen -l -E sha256`, e.g. "256 SHA256:abc... comment (ED25519)"."""
    bits, fingerprint, *_ = keygen("-l", "-E", "sha256", "-f", str(path)).split()
    return int(bits), fingerprint


def wire(*fields: bytes) -> bytes:
    """The SSH wire encoding of byte strings (RFC 4251 5), what a public key blob is made of."""
    return b"".join(len(field).to_bytes(4, "big") + field for field in fields)


def wire_fields(blob: bytes) -> list[bytes]:
    fields, pos = [], 0
    while pos < len(blob):
        size = int.from_bytes(blob[pos : pos + 4], "big")
        fields.append(blob[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return fields


def line(key_type: str, blob: bytes, comment: str = "") -> str:
    return f"{key_type} {base64.b64encode(blob).decode()} {comment}".strip()


def rejected(text: str, reason: str) -> InvalidSshKey:
    with pytest.raises(InvalidSshKey) as caught:
        parse_public_key(text)
    assert caught.value.reason == reason, caught.value.message
    assert caught.value.message == str(caught.value)
    assert len(caught.value.message) > 20
    return caught.value
