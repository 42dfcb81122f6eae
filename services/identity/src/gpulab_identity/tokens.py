"""Secrets handed to people (invite and session tokens): random, and stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

# 32 random bytes = 256 bits (the issue asks for at least 128), URL-safe for links and cookies.
TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> bytes:
    """sha256 is enough here: the tokens are random, not passwords, so there is nothing to brute-force."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
