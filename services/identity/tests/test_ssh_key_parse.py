"""The SSH key parser: accepted keys, size and shape, things that are not a public key line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gpulab_core.contracts.identity import INVALID_SSH_KEY, SSH_KEY_COMMENT_MAX, SSH_KEY_MAX_BYTES
from gpulab_identity.ssh_keys.parse import MAX_RSA_BITS, ParsedKey, parse_public_key

from .ssh_key_support import (
    Keys,
    fingerprint_by_ssh_keygen,
    keygen,
    line,
    rejected,
    wire,
    wire_fields,
)

REPO = Path(__file__).resolve().parents[3]


# ---- accepted keys ----
@pytest.mark.parametrize(
    ("name", "key_type", "bits"),
    [
        ("ed25519", "ssh-ed25519", 256),
        ("ecdsa256", "ecdsa-sha2-nistp256", 256),
        ("ecdsa384", "ecdsa-sha2-nistp384", 384),
        ("ecdsa521", "ecdsa-sha2-nistp521", 521),
        ("rsa3072", "ssh-rsa", 3072),
        ("rsa4096", "ssh-rsa", 4096),
    ],
)
def test_generated_key_is_accepted_with_ssh_keygen_fingerprint(keys: Keys, name: str, key_type: str, bits: int) -> None:
    parsed = parse_public_key(keys.pub(name))

    assert (parsed.bits, parsed.fingerprint) == fingerprint_by_ssh_keygen(keys.folder / f"{name}.pub")
    assert parsed == ParsedKey(
        type=key_type,
        fingerprint=parsed.fingerprint,
        comment=f"{name}@lab",
        bits=bits,
        normalized=keys.pub(name).strip(),
    )


@pytest.mark.parametrize(
    ("key_type", "source", "point_field"),
    [("sk-ssh-ed25519@openssh.com", "ed25519", 1), ("sk-ecdsa-sha2-nistp256@openssh.com", "ecdsa256", 2)],
)
def test_security_key_is_accepted_with_ssh_keygen_fingerprint(
    keys: Keys, tmp_path: Path, key_type: str, source: str, point_field: int
) -> None:
    # A FIDO token is needed to generate sk keys, so build one (PROTOCOL.u2f) around a real public key.
    fields = wire_fields(keys.blob(source))
    blob = wire(key_type.encode(), *fields[1 : point_field + 1], b"ssh:")
    key_line = line(key_type, blob, "token@lab")
    (tmp_path / "sk.pub").write_text(key_line + "\n")

    parsed = parse_public_key(key_line)

    assert (parsed.bits, parsed.fingerprint) == fingerprint_by_ssh_keygen(tmp_path / "sk.pub")
    assert (parsed.type, parsed.comment, parsed.normalized) == (key_type, "token@lab", key_line)


def test_key_without_comment_is_normalized_to_two_fields(keys: Keys) -> None:
    key_type, data = keys.pub("ed25519").split()[:2]

    parsed = parse_public_key(f"{key_type} {data}")

    assert (parsed.comment, parsed.normalized) == ("", f"{key_type} {data}")


def test_surrounding_whitespace_and_tabs_are_normalized(keys: Keys) -> None:
    key_type, data, comment = keys.pub("ed25519").split()

    parsed = parse_public_key(f"  {key_type}\t{data} \t {comment}  with spaces \r\n")

    assert parsed.comment == f"{comment}  with spaces"
    assert parsed.normalized == f"{key_type} {data} {comment}  with spaces"


def test_unicode_comment_is_kept(keys: Keys) -> None:
    key_type, data = keys.pub("ed25519").split()[:2]

    assert parse_public_key(f"{key_type} {data} José’s laptop 🚀").comment == "José’s laptop 🚀"


def test_error_carries_domain_code_and_reason() -> None:
    error = rejected("", "empty")

    assert isinstance(error, ValueError)
    assert (error.code, error.details) == (INVALID_SSH_KEY, {"reason": "empty"})


# ---- size and shape ----
def test_input_over_8_kib_is_too_large_before_parsing() -> None:
    assert "8 KiB" in rejected("-----BEGIN OPENSSH PRIVATE KEY-----" + "a" * 8192, "too_large").message
    rejected("é" * 4097, "too_large")  # 4097 characters, 8194 bytes of UTF-8


def test_input_of_exactly_8_kib_is_parsed(keys: Keys) -> None:
    key = keys.pub("ed25519").strip().rsplit(" ", 1)[0]  # without ssh-keygen's comment
    padded = key + " " + "c" * SSH_KEY_COMMENT_MAX
    padded += " " * (SSH_KEY_MAX_BYTES - len(padded))  # blanks around a key are what a paste often has

    assert len(padded) == SSH_KEY_MAX_BYTES
    assert parse_public_key(padded).comment == "c" * SSH_KEY_COMMENT_MAX


def test_a_comment_of_256_characters_is_kept_and_257_is_refused(keys: Keys) -> None:
    key = keys.pub("ed25519").strip().rsplit(" ", 1)[0]  # without ssh-keygen's comment
    assert parse_public_key(f"{key} {'é' * 256}").comment == "é" * 256
    refused = rejected(f"{key} {'é' * 257}", "comment_too_long")
    assert "256 characters" in refused.message


def test_the_longest_line_anyone_can_store_is_far_below_the_key_limit() -> None:
    """The largest key OpenSSH makes (RSA, 16384 bits) with the longest comment allowed."""
    modulus = (1 << (MAX_RSA_BITS - 1)) | 1  # the parser checks the numbers' shape, not their primality
    blob = wire(b"ssh-rsa", b"\x01\x00\x01", b"\x00" + modulus.to_bytes(MAX_RSA_BITS // 8, "big"))
    parsed = parse_public_key(line("ssh-rsa", blob, "\U0001f511" * SSH_KEY_COMMENT_MAX))

    assert parsed.bits == MAX_RSA_BITS
    assert len(parsed.normalized.encode()) < SSH_KEY_MAX_BYTES // 2


def test_the_key_limit_is_the_agent_s_own() -> None:
    """What the control plane stores, every agent accepts: agent/internal/reconcile/validate.go's maxKeyLine."""
    source = (REPO / "agent/internal/reconcile/validate.go").read_text()
    found = re.search(r"^const maxKeyLine = (\d+) << (\d+)$", source, re.MULTILINE)
    assert found is not None, "validate.go no longer states maxKeyLine as `N << M`"
    assert int(found[1]) << int(found[2]) == SSH_KEY_MAX_BYTES


@pytest.mark.parametrize("text", ["", "   ", "\n", " \t\r\n "])
def test_blank_input_is_empty(text: str) -> None:
    rejected(text, "empty")


def test_two_lines_are_refused(keys: Keys) -> None:
    assert "single line" in rejected(keys.pub("ed25519") + keys.pub("ecdsa256"), "multiple_lines").message


def test_carriage_return_inside_is_refused(keys: Keys) -> None:
    key_type, data, comment = keys.pub("ed25519").split()

    rejected(f"{key_type} {data}\r{comment}", "multiple_lines")


def test_two_keys_on_one_line_are_refused(keys: Keys) -> None:
    text = keys.pub("ed25519").strip() + " " + keys.pub("ecdsa256").strip()

    assert "more than one key" in rejected(text, "multiple_lines").message


def test_nul_character_is_refused(keys: Keys) -> None:
    key_type, data, comment = keys.pub("ed25519").split()

    assert "NUL" in rejected(f"{key_type} {data} {comment}\x00evil", "malformed").message


# ---- things that are not a public key line ----
@pytest.mark.parametrize(("name", "private_format"), [("ed25519", None), ("rsa3072", "PEM"), ("ecdsa256", "PEM")])
def test_real_private_key_is_refused_as_private(
    keys: Keys, tmp_path: Path, name: str, private_format: str | None
) -> None:
    path = tmp_path / name
    shutil.copy(keys.folder / name, path)
    if private_format:  # rewrite it as "BEGIN RSA PRIVATE KEY" / "BEGIN EC PRIVATE KEY"
        keygen("-p", "-m", private_format, "-P", "", "-N", "", "-f", str(path))

    error = rejected(path.read_text(), "private_key")

    assert "this is a private key — never share it; paste the contents of the .pub file" in error.message


def test_pkcs8_private_key_is_refused_as_private(keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "rsa"
    shutil.copy(keys.folder / "rsa3072", path)
    keygen("-p", "-m", "PKCS8", "-P", "", "-N", "", "-f", str(path))
    assert "-----BEGIN PRIVATE KEY-----" in path.read_text()

    rejected(path.read_text(), "private_key")


def test_private_key_body_without_armor_is_refused_as_private(keys: Keys) -> None:
    body = keys.private("ed25519").splitlines()[1]

    rejected(body, "private_key")


def test_putty_private_key_is_refused_as_private() -> None:
    putty = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: me\nPublic-Lines: 2\nAAAAC3Nz\n"

    rejected(putty, "private_key")


@pytest.mark.parametrize(("export_format", "hint"), [("RFC4716", "ssh-keygen -i -f"), ("PKCS8", "ssh-keygen -i -m")])
def test_exported_public_key_is_refused_with_conversion_hint(keys: Keys, export_format: str, hint: str) -> None:
    exported = keygen("-e", "-m", export_format, "-f", str(keys.folder / "ecdsa256.pub"))

    assert hint in rejected(exported, "pem_format").message


@pytest.mark.parametrize(
    "options",
    [
        'command="echo hi there"',
        'from="10.0.0.0/8"',
        "no-pty",
        "restrict",
        "RESTRICT",
        'environment="PATH=/tmp"',
        'no-port-forwarding,no-pty,permitopen="host:22"',
        "cert-authority",
        "something-else",
    ],
)
def test_options_prefix_is_refused(keys: Keys, options: str) -> None:
    assert "options are not allowed" in rejected(f"{options} {keys.pub('ed25519')}", "options_not_allowed").message
