"""Local stand-ins for the public base images, under their names, for scripts/imagecheck on a
machine that reaches package registries only: Python from Debian's archive (debootstrap), and the
checkout's uv, this machine's Go and Node, and tools/deploycheck's caddy."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from scripts.imagecheck.buildah import REPO, buildah, image_from, say

PYTHON_VERSION = "3.11"  # the stand-in base's (Debian bookworm's); the Dockerfile's default is 3.13
NODE_VERSION = "20"  # this machine's node, for the stand-in (Angular 21 takes ^20.19, ^22.12 or ^24)
CADDY_VERSION = "v2.11.9"  # tools/deploycheck's (CADDY_VERSION there), the minor compose pins
STAND_IN_ROOTFS_PACKAGES = "python3,python3-venv,ca-certificates,passwd"


def stand_in_bases(work: Path) -> None:
    rootfs = work / "rootfs"
    say("stand-in bases: debootstrap bookworm (Debian's archive) ...")
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={STAND_IN_ROOTFS_PACKAGES}", "bookworm", str(rootfs)],
        check=True,
        capture_output=True,
    )
    (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")
    # This machine's trust store (a proxy's CA, where there is one), so that builds reach PyPI.
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    python = f"docker.io/library/python:{PYTHON_VERSION}-slim-bookworm"
    image_from(rootfs, python, [f"PATH={path}", "LANG=C.UTF-8", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"])
    uv_version = subprocess.run([str(REPO / ".tools/bin/uv"), "--version"], capture_output=True, text=True, check=True)
    uv_dir = work / "uv"
    uv_dir.mkdir()
    shutil.copy(REPO / ".tools/bin/uv", uv_dir / "uv")
    image_from(uv_dir, f"ghcr.io/astral-sh/uv:{uv_version.stdout.split()[1]}", [])
    go = Path(shutil.which("go") or "/usr/local/go/bin/go").resolve().parents[1]
    ctr = buildah("from", python, capture=True)
    mount = Path(buildah("mount", ctr, capture=True))
    shutil.copytree(go, mount / "usr/local/go", symlinks=True)
    shutil.copy(shutil.which("make") or "/usr/bin/make", mount / "usr/bin/make")  # the agent's Makefile
    buildah("umount", ctr, capture=True)
    buildah("config", "--env", f"PATH=/usr/local/go/bin:{path}", "--env", "GOTOOLCHAIN=local", ctr)
    buildah("commit", "-q", ctr, "docker.io/library/golang:1.26-bookworm", capture=True)
    buildah("rm", ctr, capture=True)
    say("stand-in bases: python, uv, golang ready")


def stand_in_web_bases() -> None:
    """node (this machine's) and caddy (tools/deploycheck's, the compose pin) on the python stand-in."""
    python = f"docker.io/library/python:{PYTHON_VERSION}-slim-bookworm"
    node = Path(shutil.which("node") or "/usr/bin/node")
    npm = Path(os.path.realpath(shutil.which("npm") or "/usr/lib/node_modules/npm/bin/npm-cli.js")).parents[1]
    ctr = buildah("from", python, capture=True)
    mount = Path(buildah("mount", ctr, capture=True))
    shutil.copy(node, mount / "usr/bin/node")
    shutil.copytree(npm, mount / "usr/lib/node_modules/npm", symlinks=True)
    (mount / "usr/bin/npm").symlink_to("../lib/node_modules/npm/bin/npm-cli.js")
    buildah("umount", ctr, capture=True)
    buildah("config", "--env", "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt", ctr)
    buildah("commit", "-q", ctr, f"docker.io/library/node:{NODE_VERSION}-bookworm-slim", capture=True)
    buildah("rm", ctr, capture=True)
    caddy = REPO / "tools/deploycheck/bin" / f"caddy-{CADDY_VERSION}" / "caddy"
    if not caddy.exists():
        subprocess.run(["make", "-C", str(REPO / "tools/deploycheck"), "caddy"], check=True, capture_output=True)
    ctr = buildah("from", python, capture=True)
    mount = Path(buildah("mount", ctr, capture=True))
    shutil.copy(caddy, mount / "usr/bin/caddy")
    shutil.copy(shutil.which("setcap") or "/usr/sbin/setcap", mount / "usr/sbin/setcap")
    libcap = Path("/lib/x86_64-linux-gnu/libcap.so.2")
    if not (mount / "lib/x86_64-linux-gnu/libcap.so.2").exists():
        shutil.copy(libcap.resolve(), mount / "lib/x86_64-linux-gnu/libcap.so.2")
    buildah("umount", ctr, capture=True)
    # As the official image: the capability to bind :80 and :443 as a user, its data and config dirs.
    buildah("run", "--isolation=chroot", ctr, "--", "setcap", "cap_net_bind_service=+ep", "/usr/bin/caddy")
    buildah("config", "--env", "XDG_CONFIG_HOME=/config", "--env", "XDG_DATA_HOME=/data", ctr)
    minor = CADDY_VERSION.lstrip("v").rsplit(".", 1)[0]
    buildah("commit", "-q", ctr, f"docker.io/library/caddy:{minor}-alpine", capture=True)
    buildah("rm", ctr, capture=True)
    say("stand-in bases: node, caddy ready")
