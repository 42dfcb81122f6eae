"""buildah for scripts/imagecheck: the command, images made from folders, builds of
deploy/docker's Dockerfiles, and looks inside an image (a throwaway container, or its mounted files)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UID = "10001"  # every gpulab image's user (deploy/kubernetes runs each pod as it)
# vfs: no overlay mounts, which a machine without a Docker engine may not allow.
os.environ.setdefault("STORAGE_DRIVER", "vfs")


def say(line: str) -> None:
    print(line, flush=True)  # noqa: T201


def buildah(*args: str, capture: bool = False, check: bool = True) -> str:
    done = subprocess.run(["buildah", *args], check=False, capture_output=capture, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"buildah {' '.join(args[:3])} ... failed ({done.returncode}): {done.stderr or ''}")
    return (done.stdout or "").strip()


def image_from(folder: Path, name: str, env: list[str]) -> None:
    ctr = buildah("from", "scratch", capture=True)
    mount = Path(buildah("mount", ctr, capture=True))
    subprocess.run(["cp", "-a", f"{folder}/.", f"{mount}/"], check=True)
    buildah("umount", ctr, capture=True)
    for item in env:
        buildah("config", "--env", item, ctr)
    buildah("commit", "-q", ctr, name, capture=True)
    buildah("rm", ctr, capture=True)


def bud(dockerfile: str, image: str, *build_args: str) -> tuple[str, float]:
    """`buildah bud` of deploy/docker/<dockerfile> with its own .dockerignore; (image, seconds)."""
    started = time.monotonic()
    args = [a for arg in build_args for a in ("--build-arg", arg)]
    buildah(
        "bud",
        "--isolation=chroot",
        "--pull=false",
        "--quiet",
        "--ignorefile",
        f"deploy/docker/{dockerfile}.dockerignore",
        *args,
        "-f",
        f"deploy/docker/{dockerfile}",
        "-t",
        image,
        str(REPO),
        capture=True,
    )
    return image, time.monotonic() - started


def inside(image: str, script: str) -> subprocess.CompletedProcess[str]:
    ctr = buildah("from", image, capture=True)
    try:
        return subprocess.run(
            ["buildah", "run", "--isolation=chroot", ctr, "--", "sh", "-c", script],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        buildah("rm", ctr, capture=True)


def file_capabilities(image: str, path: str) -> bytes:
    """The file's `security.capability` attribute, read from the image's filesystem (b"": none)."""
    ctr = buildah("from", image, capture=True)
    try:
        mount = buildah("mount", ctr, capture=True)
        try:
            return os.getxattr(f"{mount}{path}", "security.capability")
        except OSError:
            return b""
        finally:
            buildah("umount", ctr, capture=True)
    finally:
        buildah("rm", ctr, capture=True)


def size(image: str) -> str:
    return buildah("images", "--noheading", "--format", "{{.Size}}", image, capture=True)


def probe(image: str, tools: Sequence[str], script: str) -> tuple[list[str], list[str]]:
    """Runs `script` inside the image after its process's uid and a `TOOL <name>` line for each of
    `tools` found on its PATH; returns the output's lines and what is wrong with the user and tools."""
    listed = " ".join(tools)
    done = inside(image, f'id -u; for t in {listed}; do command -v "$t" >/dev/null && echo "TOOL $t"; done; {script}')
    lines = done.stdout.splitlines()
    problems = []
    user = buildah("inspect", "--format", "{{.OCIv1.Config.User}}", image, capture=True)
    if user != f"{UID}:{UID}":
        problems.append(f"runs as {user!r}, not {UID}:{UID}")
    if not lines or lines[0] != UID:
        problems.append(f"its process is uid {lines[:1]}, not {UID}")
    problems += [
        f"has {line.split()[1]} (a build tool) in its final layer" for line in lines if line.startswith("TOOL")
    ]
    if done.returncode != 0:
        problems.append(f"the probe failed inside the image: {done.stderr.strip()[-300:]}")
    return lines, problems
