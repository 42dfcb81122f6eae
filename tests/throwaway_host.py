"""A throwaway host for the real agent: the agent runs as root in a mount namespace of its own, where
/etc is a private copy of the machine's and /home, /var/log, /var/mail and /run are empty, so the
real useradd, authorized_keys writes and userdel it runs change nothing outside. The test reads that
host through /proc/<agent pid>/root, which resolves paths in the agent's mount namespace.

systemd cannot run here, so `systemctl` is the reconciler's recorded stand-in (it reports ssh.service
loaded and accepts the reload); sshd is the real one when openssh-server is installed (`make test`
installs it as root), else the same stand-in the agent's privileged Go tests use."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAKEBIN = REPO / "agent/internal/reconcile/testdata/fakebin"
# Far above any uid the machine uses: /proc is shared, so `pkill -u` of a removed account must never
# match a real user's process (the privileged Go tests use the same range).
UID_MIN = 200000

# Runs inside the new namespace: $1 the copy of /etc, $2 the empty /home, the rest the agent's argv.
_ENTER = """
set -eu
mount --make-rprivate /
mount --bind "$1" /etc
mount --bind "$2" /home
for d in /var/log /var/mail /run; do
    if [ -d "$d" ]; then mount -t tmpfs -o mode=0755 gpulab-throwaway "$d"; fi
done
mkdir -p /run/sshd
if command -v ssh-keygen >/dev/null; then ssh-keygen -A >/dev/null; fi
shift 2
exec "$@"
"""


def unavailable_reason() -> str | None:
    """Why no throwaway host can be made on this machine, or None when one can."""
    if os.geteuid() != 0:
        return "needs root (useradd in a private mount namespace); CI runs the tests as root"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"this machine refuses a mount namespace: {probe.stderr.strip()}"
    return None


def no_sshd_reason() -> str | None:
    """Why soft enforcement cannot be checked here (its sshd drop-ins need OpenSSH's server), or None."""
    if not Path("/etc/ssh/sshd_config.d").is_dir() or not (shutil.which("sshd") or Path("/usr/sbin/sshd").exists()):
        return (
            "needs OpenSSH's server (its /etc/ssh/sshd_config.d for the agent's drop-ins, and sshd -T to check "
            "them); `make test` installs openssh-server as root with apt-get"
        )
    return None


@dataclass
class ThrowawayHost:
    folder: Path
    fake_bin: Path

    @classmethod
    def prepare(cls, folder: Path) -> ThrowawayHost:
        """Copies /etc into folder (uids moved to UID_MIN on), makes the empty /home and the stand-in
        commands."""
        folder.mkdir(parents=True)
        subprocess.run(["cp", "-a", "/etc", str(folder / "etc")], check=True)
        defs = folder / "etc/login.defs"
        kept = [
            line
            for line in defs.read_text().splitlines()
            if not line.split() or line.split()[0] not in ("UID_MIN", "UID_MAX", "GID_MIN", "GID_MAX")
        ]
        span = f"UID_MIN {UID_MIN}\nUID_MAX {UID_MIN + 99999}\nGID_MIN {UID_MIN}\nGID_MAX {UID_MIN + 99999}\n"
        defs.write_text("\n".join(kept) + "\n" + span)
        (folder / "home").mkdir(mode=0o755)
        fake_bin = folder / "fake-root/bin"
        fake_bin.mkdir(parents=True)
        names = ["_common.sh", "systemctl"] + ([] if shutil.which("sshd") else ["sshd"])
        for name in names:
            shutil.copy(FAKEBIN / name, fake_bin / name)
        return cls(folder, fake_bin)

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run as the throwaway host's process."""
        enter = ["sh", "-c", _ENTER, "gpulab-throwaway-host", str(self.folder / "etc"), str(self.folder / "home")]
        return ["unshare", "--mount", "--propagation", "private", "--", *enter, *argv]

    def calls(self) -> list[list[str]]:
        """The stand-in commands' calls so far, each as its argv."""
        log = self.fake_bin.parent / "calls.log"
        return [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []


@dataclass
class Account:
    name: str
    uid: int
    gecos: str
    home: str


def accounts(pid: int) -> dict[str, Account]:
    """The accounts of the namespace the process pid lives in, from its /etc/passwd."""
    return accounts_in(Path(f"/proc/{pid}/root/etc/passwd"))


def accounts_in(passwd: Path) -> dict[str, Account]:
    """The accounts of a passwd file: a throwaway host's own (its folder's etc/passwd) is still there
    once its last process has exited."""
    found = {}
    for line in passwd.read_text().splitlines():
        f = line.split(":")
        if len(f) >= 7:
            found[f[0]] = Account(f[0], int(f[2]), f[4], f[5])
    return found


def inside(pid: int, path: str) -> Path:
    """path as the process pid sees it."""
    return Path(f"/proc/{pid}/root") / path.lstrip("/")
