"""The SSH public key parser, against real keys made by ssh-keygen and ssh-keygen's own fingerprints."""

from __future__ import annotations

import base64
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpulab_core.contracts.identity import INVALID_SSH_KEY
from gpulab_identity.ssh_keys.parse import InvalidSshKey, ParsedKey, parse_public_key

SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
REASONS = {
    "too_large",
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


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
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
def test_input_over_16_kib_is_too_large_before_parsing() -> None:
    assert "16 KiB" in rejected("-----BEGIN OPENSSH PRIVATE KEY-----" + "a" * 16384, "too_large").message
    rejected("é" * 8193, "too_large")  # 8193 characters, 16386 bytes of UTF-8


def test_input_of_exactly_16_kib_is_parsed(keys: Keys) -> None:
    key = keys.pub("ed25519").strip()
    padded = key + "x" * (16384 - len(key))

    assert len(parse_public_key(padded).normalized) == 16384


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


def test_worst_case_16_kib_inputs_are_fast(keys: Keys) -> None:
    key = keys.pub("ed25519").strip()
    worst = [
        " " * 16384,
        "a " * 8192,
        "ssh-ed25519 " + "A" * 16372,
        "no-pty," * 2340,
        key + " " + "é" * 8000,
        key + " ssh-ed25519" * 1300,
        "=" * 16384,
        "\t" * 8000 + key,
    ]
    started = time.perf_counter()
    for text in worst:
        try:
            parse_public_key(text)
        except InvalidSshKey:
            pass
    # Linear work on 16 KiB takes about a millisecond each; catastrophic backtracking would take seconds.
    assert time.perf_counter() - started < 0.5
