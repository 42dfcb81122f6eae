"""scripts/host_state.py, the end of `make test` that fails when the tests changed the machine's
accounts, /home or /etc/ssh: here against a fake root folder."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts/host_state.py"
SECRET = "$y$j9T$not-a-real-hash"


def host_state(root: Path, action: str, snapshot: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), action, str(snapshot)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def fake_root(root: Path) -> Path:
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/shadow").write_text(f"root:{SECRET}:20000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\n")
    (root / "etc/ssh/sshd_config").write_text("Include /etc/ssh/sshd_config.d/*.conf\n")
    (root / "etc/ssh/sshd_config").chmod(0o644)
    (root / "home/grace").mkdir(parents=True)
    return root


def test_an_unchanged_host_passes(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root")
    assert host_state(root, "snapshot", tmp_path / "state.json").returncode == 0

    checked = host_state(root, "check", tmp_path / "state.json")

    assert checked.returncode == 0, checked.stderr
    assert "as the snapshot found them" in checked.stdout


def test_an_account_a_home_and_an_sshd_drop_in_left_behind_fail_and_are_named(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root")
    assert host_state(root, "snapshot", tmp_path / "state.json").returncode == 0
    account = "ada_0123abcd:x:1001:1001:gpulab-managed:/home/ada_0123abcd:/bin/bash"
    with open(root / "etc/passwd", "a") as passwd:
        passwd.write(account + "\n")
    with open(root / "etc/shadow", "a") as shadow:
        shadow.write(f"ada_0123abcd:!{SECRET}:20000:0:99999:7:::\n")
    (root / "home/ada_0123abcd").mkdir(mode=0o755)
    (root / "home/ada_0123abcd").chmod(0o755)  # whatever the umask
    drop_in = root / "etc/ssh/sshd_config.d/10-gpulab-soft-ada_0123abcd.conf"
    drop_in.write_text("Match User ada_0123abcd\n")
    drop_in.chmod(0o644)
    (root / "etc/ssh/sshd_config").chmod(0o600)

    checked = host_state(root, "check", tmp_path / "state.json")

    assert checked.returncode == 1
    assert checked.stderr.splitlines()[1:] == [
        f"  /etc/passwd: added ada_0123abcd: {account}",
        "  /etc/shadow: added ada_0123abcd",
        "  /home: added ada_0123abcd: " + host_line(root / "home/ada_0123abcd", "dir", 0o755),
        "  /etc/ssh: changed sshd_config: "
        + host_line(root / "etc/ssh/sshd_config", "file", 0o644)
        + " -> "
        + host_line(root / "etc/ssh/sshd_config", "file", 0o600),
        "  /etc/ssh: added sshd_config.d/10-gpulab-soft-ada_0123abcd.conf: " + host_line(drop_in, "file", 0o644),
    ]
    assert SECRET not in checked.stdout + checked.stderr  # a shadow line is never printed


def test_a_removed_account_and_a_changed_group_fail(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n")
    assert host_state(root, "snapshot", tmp_path / "state.json").returncode == 0
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:ada\n")

    checked = host_state(root, "check", tmp_path / "state.json")

    assert checked.returncode == 1
    assert checked.stderr.splitlines()[1:] == [
        "  /etc/passwd: removed sshd",
        "  /etc/group: changed root: root:x:0:ada",
    ]


def host_line(path: Path, kind: str, mode: int) -> str:
    """How the script describes path: kind, mode, owner and, for a file, its contents' digest."""
    st = path.stat()
    text = f"{kind} {mode:04o} {st.st_uid}:{st.st_gid}"
    return text + (f" sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}" if kind == "file" else "")
