"""The Linux account name of a user: derived from the email once, then kept for every node and
every assignment (stable), unique across all users (so unique on every node), and valid for
`useradd` on any distribution: `^[a-z_][a-z0-9_-]{0,31}$`."""

from __future__ import annotations

import re
import unicodedata
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_scheduler.assignments import usernames_repository as repository

MAX_LEN = 32
# Accounts every distribution (or the agent) has or needs: never given to a user.
RESERVED = frozenset(
    "root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats nobody "
    "systemd-network systemd-resolve systemd-timesync messagebus sshd syslog admin administrator "
    "ubuntu debian centos ec2-user gpulab gpulab-agent nvidia-persistenced polkitd postgres".split()
)


def base_name(email: str) -> str:
    """`Ada.Lovelace+gpu@lab.org` → `ada.lovelace` → `ada_lovelace`: lower case ASCII, letters,
    digits, `_` and `-` only, starting with a letter or `_`, at most 28 characters (room for `-99`)."""
    local = email.split("@", 1)[0].split("+", 1)[0]
    ascii_only = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode().lower()
    name = re.sub(r"[^a-z0-9_-]+", "_", ascii_only).strip("_-")
    if not name or not re.match(r"[a-z_]", name[0]):
        name = f"u_{name}" if name else "user"
    name = name[: MAX_LEN - 4].rstrip("_-") or "user"
    if name in RESERVED:
        name = f"gl_{name}"[: MAX_LEN - 4]
    return name


async def username_for(session: AsyncSession, user_id: uuid.UUID, email: str) -> str:
    """The user's name, made on their first assignment; concurrent first assignments agree."""
    existing = await repository.username_of(session, user_id)
    if existing is not None:
        return existing
    base = base_name(email)
    for n in range(1, 1000):
        candidate = base if n == 1 else f"{base}-{n}"
        if await repository.claim_username(session, user_id, candidate):
            return candidate
        # Taken: by this user (a concurrent first assignment won) or by someone else.
        existing = await repository.username_of(session, user_id)
        if existing is not None:
            return existing
    raise RuntimeError(f"no free Linux username for {base}")
