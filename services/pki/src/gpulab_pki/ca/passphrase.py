"""The passphrase that encrypts the CA key at rest: checks on the setting, and the local run's file.

A deployment passes the passphrase in a setting; the local run has none, so it generates one once and
keeps it next to the data it protects, readable by its owner only (issue 4).
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

from gpulab_core.settings import is_placeholder
from gpulab_pki.ca.errors import CaKeyError, WeakPassphrase

MIN_PASSPHRASE_CHARS = 16  # 16 random characters is > 90 bits even from a small alphabet
GENERATED_BYTES = 32  # 256 bits, written as base64
_FILE_MAX_BYTES = 4096  # a passphrase file is one line; a bigger file is the wrong file


def check_passphrase(value: str | bytes) -> bytes:
    """The passphrase as bytes, or WeakPassphrase (a ValueError) for an empty, placeholder or short one."""
    raw = value.encode() if isinstance(value, str) else value
    text = raw.strip()
    if not text:
        raise WeakPassphrase("the CA key passphrase is empty")
    # The rule of every secret setting (gpulab_core.settings), here also for the passphrase file.
    if is_placeholder(text):
        raise WeakPassphrase("the CA key passphrase is a placeholder from an example; set a random one")
    if len(text) < MIN_PASSPHRASE_CHARS:
        raise WeakPassphrase(f"the CA key passphrase has {len(text)} characters; at least {MIN_PASSPHRASE_CHARS}")
    return raw


def passphrase_from_file(path: Path) -> bytes:
    """Read a passphrase file that only its owner can read; surrounding whitespace is not part of it."""
    passphrase = _read(path)
    if passphrase is None:
        raise CaKeyError("missing_file", f"the CA passphrase file {path} does not exist")
    return passphrase


def ensure_passphrase_file(path: Path) -> bytes:
    """The local run's passphrase: read it from `path`, or create the file (mode 0600) on first start.

    Safe when two processes start at once: the file appears atomically with its content, and the
    loser of the race reads the winner's passphrase instead of overwriting it (which would leave a
    key encrypted under a passphrase nobody has).
    """
    existing = _read(path)
    if existing is not None:
        return existing
    # 0700: the folder also holds the encrypted key; no one else needs to list it.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    content = base64.b64encode(secrets.token_bytes(GENERATED_BYTES)) + b"\n"
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only take bits away; this says what we mean regardless
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # unlike rename, link never replaces an existing file
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return passphrase_from_file(path)


def _read(path: Path) -> bytes | None:
    try:
        # O_NOFOLLOW: the permission check below must be about the file we read, not a link to it.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CaKeyError("insecure_file", f"the CA passphrase file {path} cannot be opened: {exc.strerror}") from exc
    try:
        # fstat on the open descriptor: no window between checking the file and reading it.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CaKeyError("insecure_file", f"the CA passphrase file {path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise CaKeyError(
                "insecure_file",
                f"the CA passphrase file {path} has mode {mode:04o}: group or others may access it;"
                f" run `chmod 600 {path}` (and consider the passphrase exposed)",
            )
        data = os.read(fd, _FILE_MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > _FILE_MAX_BYTES:
        raise CaKeyError("insecure_file", f"the CA passphrase file {path} is larger than {_FILE_MAX_BYTES} bytes")
    return check_passphrase(data.strip())
