"""Strict parsing of the one-line OpenSSH public keys that users paste into the portal.

What we store ends up in authorized_keys on lab machines, so the parser accepts only what we are sure
of: one key, no options, a modern key type, and key material that decodes to a real key. The wire
formats come from RFC 4253 6.6 (ssh-rsa), RFC 5656 3.1 (ecdsa), RFC 8709 4 (ssh-ed25519) and
OpenSSH PROTOCOL.u2f (the sk- types). The only regular expression splits on runs of blanks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ec

from gpulab_core.contracts.identity import INVALID_SSH_KEY, SSH_KEY_COMMENT_MAX, SSH_KEY_MAX_BYTES
from gpulab_core.errors import GpulabError

Reason = Literal[
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
    "comment_too_long",
]

MIN_RSA_BITS = 3072  # NIST SP 800-57 part 1: 128-bit security from 2031 on
MAX_RSA_BITS = 16384  # OpenSSH's OPENSSH_RSA_MAX_MODULUS: larger keys would never be usable
_EC_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {  # curve name -> (curve, bits)
    "nistp256": (ec.SECP256R1(), 256),
    "nistp384": (ec.SECP384R1(), 384),
    "nistp521": (ec.SECP521R1(), 521),
}
SUPPORTED_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
)
_KNOWN_TYPES = frozenset((*SUPPORTED_TYPES, "ssh-dss"))
# sshd's authorized_keys options (sshd(8) "AUTHORIZED_KEYS FILE FORMAT"); matched case-insensitively.
_OPTION_NAMES = frozenset(
    "agent-forwarding cert-authority command environment expiry-time from no-agent-forwarding"
    " no-port-forwarding no-pty no-user-rc no-x11-forwarding no-touch-required permitlisten permitopen"
    " port-forwarding principals pty restrict tunnel user-rc verify-required x11-forwarding".split()
)
_PRIVATE_BODY = "b3BlbnNzaC1rZXktdjE"  # base64 of "openssh-key-v1", the start of every OpenSSH private key
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BLANKS = re.compile(r"[ \t]+")


class InvalidSshKey(GpulabError, ValueError):
    """A pasted key we refuse. `message` is a sentence for the user, `reason` a stable word for code."""

    code = INVALID_SSH_KEY

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason: Reason = reason


@dataclass(frozen=True)
class ParsedKey:
    type: str
    fingerprint: str  # "SHA256:<unpadded base64>", as `ssh-keygen -l -E sha256` prints it
    comment: str
    bits: int
    normalized: str  # "<type> <base64>[ <comment>]": what is stored and written to authorized_keys


def parse_public_key(text: str) -> ParsedKey:
    """Validate one pasted public key line; raise InvalidSshKey with a reason the portal can show."""
    # Length first: every later step is linear, but nothing should even look at a huge body.
    if len(text) > SSH_KEY_MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > SSH_KEY_MAX_BYTES:
        raise InvalidSshKey(
            "too_large", f"the key is larger than {SSH_KEY_MAX_BYTES // 1024} KiB; paste one public key"
        )
    line = text.strip()
    if not line:
        raise InvalidSshKey("empty", "no key was given; paste the contents of your .pub file")
    _refuse_other_formats(line)
    if "\n" in line or "\r" in line:
        raise InvalidSshKey("multiple_lines", "paste exactly one key, on a single line")
    if "\x00" in line:
        raise InvalidSshKey("malformed", "the key contains a NUL character; paste the text of your .pub file")

    fields = _BLANKS.split(line, maxsplit=2)
    key_type = fields[0]
    _check_type(key_type, line)
    if len(fields) < 2:
        raise InvalidSshKey("malformed", "the key data after the key type is missing")
    blob = _decode_base64(fields[1])
    bits = _check_blob(key_type, blob)
    comment = fields[2] if len(fields) == 3 else ""  # the blanks around it went with strip() and split()
    _check_comment(comment)

    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    normalized = f"{key_type} {fields[1]} {comment}" if comment else f"{key_type} {fields[1]}"
    return ParsedKey(type=key_type, fingerprint=f"SHA256:{digest}", comment=comment, bits=bits, normalized=normalized)


def _refuse_other_formats(line: str) -> None:
    if "PuTTY-User-Key-File-" in line or ("BEGIN" in line and "PRIVATE KEY" in line) or _PRIVATE_BODY in line:
        raise InvalidSshKey(
            "private_key", "this is a private key — never share it; paste the contents of the .pub file instead"
        )
    if "BEGIN" in line and "PUBLIC KEY" in line:
        # RFC 4716 ("---- BEGIN SSH2 PUBLIC KEY ----") is ssh-keygen's default import format; PEM needs -m.
        command = "ssh-keygen -i -f key.pub" if "SSH2" in line else "ssh-keygen -i -m PKCS8 -f key.pem"
        raise InvalidSshKey(
            "pem_format",
            f"this is a PEM/RFC 4716 public key; convert it with `{command}` and paste the one-line result",
        )


def _check_type(key_type: str, line: str) -> None:
    if key_type in _KNOWN_TYPES:
        if key_type == "ssh-dss":
            raise InvalidSshKey("unsupported_type", "DSA keys are no longer considered secure; use ed25519")
        return
    shown = _shown(key_type)
    if key_type.endswith("-cert-v01@openssh.com") or key_type.endswith("-cert-v00@openssh.com"):
        raise InvalidSshKey(
            "certificate", f"'{shown}' is an SSH certificate; paste the plain public key (the .pub file) instead"
        )
    option = key_type.split("=", 1)[0].split(",", 1)[0].lower()
    if option in _OPTION_NAMES or any(word in _KNOWN_TYPES for word in _BLANKS.split(line)):
        raise InvalidSshKey(
            "options_not_allowed",
            f"options are not allowed before the key (found '{shown}'); paste only the line from your .pub file",
        )
    if key_type.startswith("AAAA"):
        raise InvalidSshKey("malformed", "the key type is missing; paste the whole line from your .pub file")
    raise InvalidSshKey(
        "unsupported_type", f"'{shown}' is not a supported key type; use one of: {', '.join(SUPPORTED_TYPES)}"
    )


def _decode_base64(data: str) -> bytes:
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
        raise InvalidSshKey("malformed", "the key data is not valid base64; copy the line again") from None
    # Only the canonical encoding: it is what we store, so equal keys always compare equal.
    if not blob or base64.b64encode(blob).decode("ascii") != data:
        raise InvalidSshKey("malformed", "the key data is not valid base64; copy the line again")
    return blob


class _Reader:
    """The SSH wire encoding (RFC 4251 5): uint32 lengths in front of byte strings and mpints."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def string(self) -> bytes:
        if len(self._data) - self._pos < 4:
            raise _malformed("it ends in the middle of a field")
        size = int.from_bytes(self._data[self._pos : self._pos + 4], "big")
        start = self._pos + 4
        if size > len(self._data) - start:
            raise _malformed("a field is longer than the key data")
        self._pos = start + size
        return self._data[start : self._pos]

    def text(self) -> str:
        raw = self.string()
        if not raw.isascii() or not raw.decode("ascii").isprintable():
            raise _malformed("a name field is not printable ASCII")
        return raw.decode("ascii")

    def mpint(self) -> int:
        raw = self.string()
        if raw and raw[0] & 0x80:
            raise _malformed("an RSA number is negative")
        if len(raw) > 1 and raw[0] == 0 and not raw[1] & 0x80:
            raise _malformed("an RSA number has a superfluous leading zero")
        return int.from_bytes(raw, "big")

    def end(self) -> None:
        if self._pos != len(self._data):
            raise _malformed("there is unexpected data after the key")


def _check_blob(key_type: str, blob: bytes) -> int:
    """Check the decoded key against its declared type; return its size in bits as ssh-keygen shows it."""
    reader = _Reader(blob)
    inner = reader.text()
    if inner != key_type:
        raise _malformed(f"the line says '{key_type}' but the key data is '{_shown(inner)}'")
    if key_type in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com"):
        _check_ed25519(reader.string())
        bits = 256
    elif key_type == "ssh-rsa":
        bits = _check_rsa(e=reader.mpint(), n=reader.mpint())
    else:  # ecdsa-sha2-nistp* and sk-ecdsa-sha2-nistp256@openssh.com
        curve_name = key_type.removeprefix("sk-").removesuffix("@openssh.com").removeprefix("ecdsa-sha2-")
        if reader.text() != curve_name:
            raise _malformed("its curve does not match the key type")
        curve, bits = _EC_CURVES[curve_name]
        point = reader.string()
        # OpenSSH writes uncompressed points (SEC 1 2.3.3): 0x04, then X and Y of the field's size.
        if len(point) != 1 + 2 * ((bits + 7) // 8) or point[0] != 4:
            raise _malformed("the curve point has the wrong encoding")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        except ValueError:
            raise _malformed("the point is not on the curve") from None
    if key_type.startswith("sk-"):
        application = reader.string()
        if not application or not application.isascii() or not application.decode("ascii").isprintable():
            raise _malformed("the security key application is not printable ASCII")
    reader.end()
    return bits


_ED25519_P = 2**255 - 19  # RFC 8032 5.1
_ED25519_D = -121665 * pow(121666, -1, _ED25519_P) % _ED25519_P


def _check_ed25519(public: bytes) -> None:
    """Decode the point as RFC 8032 5.1.3 does; cryptography accepts any 32 bytes without this check."""
    if len(public) != 32:
        raise _malformed("an ed25519 key must be 32 bytes")
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    x_is_odd = public[31] >> 7
    if y >= _ED25519_P:
        raise _malformed("the point is not on the curve")
    y2 = y * y % _ED25519_P
    x2 = (y2 - 1) * pow(_ED25519_D * y2 + 1, -1, _ED25519_P) % _ED25519_P
    # A square has x2^((p-1)/2) == 1 (Euler's criterion); x == 0 has no odd twin.
    if (x2 != 0 and pow(x2, (_ED25519_P - 1) // 2, _ED25519_P) != 1) or (x2 == 0 and x_is_odd):
        raise _malformed("the point is not on the curve")


def _check_rsa(e: int, n: int) -> int:
    bits = n.bit_length()
    if n % 2 == 0 or e % 2 == 0 or e < 3 or e >= n:
        raise _malformed("its RSA numbers are not a valid public key")
    if bits > MAX_RSA_BITS:
        raise _malformed(f"RSA keys above {MAX_RSA_BITS} bits cannot be used by OpenSSH")
    if bits < MIN_RSA_BITS:
        raise InvalidSshKey(
            "weak_key",
            f"this RSA key has {bits} bits; at least {MIN_RSA_BITS} are required — better, use ed25519"
            " (`ssh-keygen -t ed25519`)",
        )
    return bits


def _check_comment(comment: str) -> None:
    words = _BLANKS.split(comment)
    for word, following in zip(words, words[1:], strict=False):
        if word in _KNOWN_TYPES and following.startswith("AAAA"):
            raise InvalidSshKey("multiple_lines", "this looks like more than one key; paste one key at a time")
    if len(comment) > SSH_KEY_COMMENT_MAX:
        raise InvalidSshKey(
            "comment_too_long",
            f"the key's comment is longer than {SSH_KEY_COMMENT_MAX} characters; shorten it"
            " (`ssh-keygen -c -f <key>` changes it) or leave it out",
        )
    if comment.isascii() and comment.isprintable():
        return
    for char in comment:
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS:
            raise InvalidSshKey("malformed", "the comment contains control characters; remove them or leave it out")


def _malformed(detail: str) -> InvalidSshKey:
    return InvalidSshKey("malformed", f"the key data is damaged: {detail}; copy the line from your .pub file again")


def _shown(value: str) -> str:
    """A user-supplied word, short and printable, for a message."""
    clipped = value[:64] + ("…" if len(value) > 64 else "")
    return clipped.encode("ascii", "backslashreplace").decode("ascii")
