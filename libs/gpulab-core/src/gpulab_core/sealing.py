"""A secret sealed for the services that share a key, so that it may travel on the event stream.

The stream keeps events for 30 days and every service may read it; an invite token in clear there
would let any reader of the stream (or of its backups) take over the invited account. identity
seals the token with `GPULAB_INVITE_SEAL_KEY`, notify opens it just before it writes the mail; the
event and notify's stored copy hold only the sealed form (docs/adr/0007).

ChaCha20-Poly1305 with a random 96-bit nonce, the key derived from the setting with HKDF-SHA256, and
the invite's id as associated data: a sealed token opens only for the invite it was made for.
"""

from __future__ import annotations

import base64
import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# The form's version: a later scheme gets another prefix, and an old one is refused by name.
PREFIX = "s1."
NONCE_BYTES = 12  # ChaCha20-Poly1305's nonce (RFC 8439)
# A secret setting's shortest accepted length: 32 characters, e.g. `openssl rand -hex 32` gives 64.
MIN_KEY_CHARS = 32


class SealError(ValueError):
    """The sealed value is not one this key made for this context (wrong key, altered, other invite)."""


def _aead(key: str, purpose: bytes) -> ChaCha20Poly1305:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"gpulab-seal-v1:" + purpose).derive(
        key.encode()
    )
    return ChaCha20Poly1305(derived)


def seal(key: str, purpose: bytes, context: bytes, secret: str) -> str:
    """`secret` sealed under `key` for `purpose` (e.g. b"invite-token"), bound to `context`."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = _aead(key, purpose).encrypt(nonce, secret.encode(), context)
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def open_sealed(key: str, purpose: bytes, context: bytes, sealed: str) -> str:
    """The secret `seal` sealed, or SealError."""
    if not sealed.startswith(PREFIX):
        raise SealError("not a sealed value of a known version")
    body = sealed.removeprefix(PREFIX)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return _aead(key, purpose).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context).decode()
    except (InvalidTag, ValueError) as exc:
        raise SealError("the sealed value does not open with this key for this context") from exc


# What identity seals and notify opens: an invite's token, bound to that invite's id.
INVITE_TOKEN = b"invite-token"


def seal_invite_token(key: str, invite_id: uuid.UUID, token: str) -> str:
    return seal(key, INVITE_TOKEN, invite_id.bytes, token)


def open_invite_token(key: str, invite_id: uuid.UUID, sealed: str) -> str:
    return open_sealed(key, INVITE_TOKEN, invite_id.bytes, sealed)
