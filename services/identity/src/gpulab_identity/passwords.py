"""Password rules and argon2id hashing.

Passwords are normalised to NFKC (NIST SP 800-63B: the same password typed on another keyboard or
OS must match), must be 12 to 128 characters after that, and are hashed whole: never truncated.
"""

from __future__ import annotations

import asyncio
import secrets
import unicodedata

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gpulab_core.contracts.identity import PASSWORD_MAX, PASSWORD_MIN
from gpulab_identity.errors import InvalidPassword


def normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def check_rules(password: str) -> str:
    """The normalised password, or InvalidPassword saying what is wrong."""
    value = normalise(password)
    if len(value) < PASSWORD_MIN:
        raise InvalidPassword(f"the password must have at least {PASSWORD_MIN} characters")
    if len(value) > PASSWORD_MAX:
        raise InvalidPassword(f"the password must have at most {PASSWORD_MAX} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise InvalidPassword("the password must not contain control characters")
    return value


class Passwords:
    """argon2id with parameters from settings; hashing runs in a thread (it takes tens of ms by design)."""

    def __init__(self, memory_kib: int, time_cost: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=Type.ID)
        # Verified against when the email is unknown, so that the reply takes as long as for a real account.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(32))

    async def hash(self, normalised_password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, normalised_password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        candidate = normalise(password)
        target = stored_hash or self._dummy
        try:
            ok = await asyncio.to_thread(self._hasher.verify, target, candidate)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return bool(ok) and stored_hash is not None
