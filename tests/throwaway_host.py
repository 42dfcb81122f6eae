"""A throwaway host for the real agent: the agent runs as root in a mount namespace of its own, where
/etc is a private copy of the machine's and /home, /var/log, /var/mail and /run are empty, so the
real useradd, authorized_keys writes and userdel it runs change nothing outside. The test reads that
host through /proc/<agent pid>/root, which resolves paths in the agent's mount namespace.

systemd cannot run here. By default the host looks like a node booted with systemd (its
/run/systemd/system exists, as sd_booted(3) checks) and `systemctl` is the reconciler's recorded
stand-in (it reports ssh.service loaded and accepts the reload). Made with systemd=False it is a node
without systemd: no /run/systemd/system and no stand-in. With sshd_port the host runs a real sshd
of its own on 127.0.0.1:<port>, started before the agent (PID file /run/sshd.pid, sshd's default),
which close() ends. sshd -T is the real one when openssh-server is installed (`make test` installs it
as root), else the same stand-in the agent's privileged Go tests use."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAKEBIN = REPO / "agent/internal/reconcile/testdata/fakebin"
# Far above any uid the machine uses: /proc is shared, so `pkill -u` of a removed account must never
# match a real user's process (the privileged Go tests use the same range).
UID_MIN = 200000

# Runs inside the new namespace: $1 the copy of /etc, $2 the empty /home, $3 "systemd" or "", $4 the
# real sshd's port or "", $5 where to copy sshd's PID file for the test, the rest the agent's argv.
_ENTER = """
set -eu
mount --make-rprivate /
mount --bind "$1" /etc
mount --bind "$2" /home
for d in /var/log /var/mail /run; do
    if [ -d "$d" ]; then mount -t tmpfs -o mode=0755 gpulab-throwaway "$d"; fi
done
mkdir -p /run/sshd
if [ "$3" = systemd ]; then mkdir -p /run/systemd/system; fi
if command -v ssh-keygen >/dev/null; then ssh-keygen -A >/dev/null; fi
if [ -n "$4" ]; then
    # An absolute path: sshd re-executes itself on SIGHUP.
    "$(command -v sshd)" -p "$4" -o ListenAddress=127.0.0.1
    tries=0
    until [ -s /run/sshd.pid ]; do
        tries=$((tries + 1))
        if [ "$tries" -gt 100 ]; then echo "sshd wrote no /run/sshd.pid within 10 s" >&2; exit 1; fi
        sleep 0.1
    done
    cp /run/sshd.pid "$5"
fi
shift 5
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
    systemd: bool = True
    sshd_port: int | None = None

    @classmethod
    def prepare(cls, folder: Path, *, systemd: bool = True, sshd_port: int | None = None) -> ThrowawayHost:
        """Copies /etc into folder (uids moved to UID_MIN on), makes the empty /home and the stand-in
        commands: systemctl's only on a host with systemd, sshd's only where openssh-server is not
        installed. With sshd_port, the first process run in the host starts a real sshd there."""
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
        names = ["_common.sh"] + (["systemctl"] if systemd else []) + ([] if shutil.which("sshd") else ["sshd"])
        for name in names:
            shutil.copy(FAKEBIN / name, fake_bin / name)
        return cls(folder, fake_bin, systemd, sshd_port)

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run as the throwaway host's process (the first one also starts its sshd, if any)."""
        enter = [
            "sh",
            "-c",
            _ENTER,
            "gpulab-throwaway-host",
            str(self.folder / "etc"),
            str(self.folder / "home"),
            "systemd" if self.systemd else "",
            "" if self.sshd_port is None or self.sshd_pid() is not None else str(self.sshd_port),
            str(self._sshd_pid_copy),
        ]
        return ["unshare", "--mount", "--propagation", "private", "--", *enter, *argv]

    @property
    def _sshd_pid_copy(self) -> Path:
        return self.folder / "sshd.pid"

    def sshd_pid(self) -> int | None:
        """The pid of the host's running sshd, or None when it runs none."""
        try:
            pid = int(self._sshd_pid_copy.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None
        return pid if comm == "sshd" else None

    def close(self) -> None:
        """Ends the host's sshd (its sessions end with their clients)."""
        if (pid := self.sshd_pid()) is not None:
            os.kill(pid, signal.SIGTERM)

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
