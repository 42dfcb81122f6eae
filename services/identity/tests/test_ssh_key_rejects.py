"""The SSH key parser: refused key types and damaged key data."""

from __future__ import annotations

import base64
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from gpulab_identity.ssh_keys.parse import InvalidSshKey, parse_public_key

from .ssh_key_support import (
    REASONS,
    Keys,
    keygen,
    line,
    rejected,
    wire,
    wire_fields,
)


# ---- key types ----
def test_dsa_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dsa"
    try:
        keygen("-q", "-t", "dsa", "-N", "", "-f", str(path))
        text = path.with_suffix(".pub").read_text()
    except subprocess.CalledProcessError:  # OpenSSH 10 dropped DSA: build the line by hand
        text = line("ssh-dss", wire(b"ssh-dss", b"\x00\xc1" * 64, b"\x00\x91" * 10, b"\x02" * 128, b"\x03" * 128))

    assert "DSA keys are no longer considered secure; use ed25519" in rejected(text, "unsupported_type").message


@pytest.mark.parametrize(
    "key_type", ["ssh-foo", "rsa-sha2-256", "ecdsa-sha2-nistp192", "webauthn-sk-ecdsa-sha2-nistp256@openssh.com"]
)
def test_unknown_key_type_is_refused(key_type: str) -> None:
    error = rejected(line(key_type, wire(key_type.encode(), b"x" * 32)), "unsupported_type")

    assert key_type in error.message
    assert "ssh-ed25519" in error.message


def test_rsa_2048_is_refused_as_weak_with_its_size(keys: Keys) -> None:
    assert "2048" in rejected(keys.pub("rsa2048"), "weak_key").message


def test_certificate_is_refused(keys: Keys, tmp_path: Path) -> None:
    shutil.copy(keys.folder / "ed25519.pub", tmp_path / "user.pub")
    keygen("-q", "-s", str(keys.folder / "ca"), "-I", "user", "-n", "user", str(tmp_path / "user.pub"))

    assert "certificate" in rejected((tmp_path / "user-cert.pub").read_text(), "certificate").message


# ---- damaged key data ----
def test_key_data_missing_is_malformed() -> None:
    rejected("ssh-ed25519", "malformed")


def test_key_type_missing_is_malformed(keys: Keys) -> None:
    assert "type is missing" in rejected(keys.pub("ed25519").split(maxsplit=1)[1], "malformed").message


@pytest.mark.parametrize(
    "data",
    [
        "AAAA$$$$",
        "AAAAC3NzaC1lZDI1NTE",  # length not a multiple of 4
        "AAAAC3NzaC1lZDI1NTE5AAAAIA=",  # padding cut short
        "AAAAC3NzaC1lZDI1NTE5AAAAIB==",  # non-canonical: padding bits set
        "AAAAC3NzaC1lZDI1NTE5ÄÄÄÄ",
    ],
)
def test_invalid_base64_is_malformed(data: str) -> None:
    assert "base64" in rejected(f"ssh-ed25519 {data}", "malformed").message


def test_declared_type_differing_from_blob_is_malformed(keys: Keys) -> None:
    error = rejected("ssh-ed25519 " + keys.pub("rsa3072").split()[1], "malformed")

    assert "'ssh-ed25519'" in error.message
    assert "'ssh-rsa'" in error.message


@pytest.mark.parametrize("name", ["ed25519", "ecdsa384", "rsa3072"])
def test_trailing_bytes_inside_blob_are_malformed(keys: Keys, name: str) -> None:
    key_type = keys.pub(name).split()[0]

    assert "unexpected data" in rejected(line(key_type, keys.blob(name) + b"\x00"), "malformed").message


@pytest.mark.parametrize("name", ["ed25519", "ecdsa521", "rsa4096"])
def test_truncated_blob_is_malformed(keys: Keys, name: str) -> None:
    key_type = keys.pub(name).split()[0]

    rejected(line(key_type, keys.blob(name)[:-1]), "malformed")


@pytest.mark.parametrize(
    "public",
    [
        (2).to_bytes(32, "little"),  # y = 2: (y²-1)/(dy²+1) is not a square mod 2^255-19
        (2**255 - 19).to_bytes(32, "little"),  # y = p: not a canonical field element
        b"\x01" * 31,  # wrong length
    ],
)
def test_ed25519_key_off_the_curve_is_malformed(public: bytes) -> None:
    rejected(line("ssh-ed25519", wire(b"ssh-ed25519", public)), "malformed")


def test_ecdsa_point_off_the_curve_is_malformed(keys: Keys) -> None:
    key_type, curve, point = wire_fields(keys.blob("ecdsa256"))
    moved = point[:-1] + bytes([point[-1] ^ 1])

    assert "not on the curve" in rejected(line(key_type.decode(), wire(key_type, curve, moved)), "malformed").message


def test_ecdsa_compressed_point_is_malformed(keys: Keys) -> None:
    key_type, curve, point = wire_fields(keys.blob("ecdsa256"))
    compressed = bytes([2 + point[-1] % 2]) + point[1:33]

    rejected(line(key_type.decode(), wire(key_type, curve, compressed)), "malformed")


def test_ecdsa_curve_not_matching_type_is_malformed(keys: Keys) -> None:
    key_type, _, point = wire_fields(keys.blob("ecdsa256"))

    rejected(line(key_type.decode(), wire(key_type, b"nistp384", point)), "malformed")


@pytest.mark.parametrize(
    ("exponent", "modulus"),
    [
        (b"\x01\x00\x01", b"\x80" + b"\x01" * 383),  # modulus with the sign bit set: negative
        (b"\x00\x01\x00\x01", b"\x00\xc1" + b"\x01" * 383),  # superfluous leading zero
        (b"\x01\x00\x01", b"\x00\xc1" + b"\x02" * 383),  # even modulus
        (b"\x01\x00\x00", b"\x00\xc1" + b"\x01" * 383),  # even exponent
        (b"", b"\x00\xc1" + b"\x01" * 383),  # zero exponent
    ],
)
def test_invalid_rsa_numbers_are_malformed(exponent: bytes, modulus: bytes) -> None:
    rejected(line("ssh-rsa", wire(b"ssh-rsa", exponent, modulus)), "malformed")


@pytest.mark.parametrize("application", [None, b"", b"ssh:\x00x", b"ssh:\xff"])
def test_security_key_without_valid_application_is_malformed(keys: Keys, application: bytes | None) -> None:
    key_type = b"sk-ssh-ed25519@openssh.com"
    public = wire_fields(keys.blob("ed25519"))[1]
    fields = [key_type, public] if application is None else [key_type, public, application]

    rejected(line(key_type.decode(), wire(*fields)), "malformed")


@pytest.mark.parametrize("bad", ["\x1b[31m", "\x07", "\x7f", "\u202e", "\u2028", "\x85", "a\tb"])
def test_comment_with_control_characters_is_malformed(keys: Keys, bad: str) -> None:
    key_type, data = keys.pub("ed25519").split()[:2]

    assert "comment" in rejected(f"{key_type} {data} me{bad}x", "malformed").message


# ---- robustness ----
def mutate(rng: random.Random, text: str) -> str:
    position = rng.randrange(len(text))
    match rng.randrange(6):
        case 0:  # replace one character, often by an odd one
            return (
                text[:position]
                + rng.choice(["\x00", "\n", "=", " ", "é", "\ud800", chr(rng.randrange(0x250))])
                + text[position + 1 :]
            )
        case 1:
            return text[:position] + text[position + rng.randrange(1, 20) :]
        case 2:
            return text[:position] + text[position : position + rng.randrange(1, 50)] + text[position:]
        case 3:
            return text[:position]
        case 4:  # flip a byte inside the blob, keeping the base64 valid: reaches the wire parser
            key_type, data, *rest = text.split(" ")
            blob = bytearray(base64.b64decode(data))
            blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
            return " ".join([key_type, base64.b64encode(bytes(blob)).decode(), *rest])
        case _:  # cut the blob short or extend it, re-encoded
            key_type, data, *rest = text.split(" ")
            decoded = base64.b64decode(data)
            cut = rng.randrange(len(decoded) + 8)
            decoded = decoded[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(3)))
            return " ".join([key_type, base64.b64encode(decoded).decode(), *rest])


@pytest.mark.parametrize("name", ["ed25519", "ecdsa384", "rsa3072"])
def test_random_mutations_only_ever_raise_invalid_ssh_key(keys: Keys, name: str) -> None:
    rng = random.Random(name)  # reproducible
    original = keys.pub(name).strip()
    refusals = []
    for _ in range(300):
        try:
            parse_public_key(mutate(rng, original))
        except InvalidSshKey as error:  # anything else escapes and fails the test
            refusals.append((error.reason, error.message))

    assert {reason for reason, _ in refusals} <= REASONS
    assert all(message for _, message in refusals)
    assert len(refusals) > 150  # the mutations do reach the parser's refusals, not only the comment


def test_worst_case_8_kib_inputs_are_fast(keys: Keys) -> None:
    key = keys.pub("ed25519").strip()
    worst = [
        " " * 8192,
        "a " * 4096,
        "ssh-ed25519 " + "A" * 8180,
        "no-pty," * 1170,
        key + " " + "é" * 4000,
        key + " ssh-ed25519" * 650,
        "=" * 8192,
        "\t" * 8000 + key,
    ]
    started = time.perf_counter()
    for text in worst:
        try:
            parse_public_key(text)
        except InvalidSshKey:
            pass
    # Linear work on 8 KiB takes about a millisecond each; catastrophic backtracking would take seconds.
    assert time.perf_counter() - started < 0.5
