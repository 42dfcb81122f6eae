"""The service image's Dockerfile against the workspace it builds: a member it does not copy would
make `uv sync --frozen` fail inside the build, which no Docker engine here would show
(scripts/imagecheck builds the images with buildah, outside `make test`)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "deploy" / "docker" / "python.Dockerfile"
IGNORE = REPO / "deploy" / "docker" / "python.Dockerfile.dockerignore"


def members() -> set[str]:
    workspace = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    return set(workspace["members"])


def copied_manifests() -> set[str]:
    return set(re.findall(r"^COPY (\S+)/pyproject\.toml \1/$", DOCKERFILE.read_text(), re.MULTILINE))


def test_the_dependency_layer_copies_every_workspace_members_manifest_and_nothing_else() -> None:
    assert copied_manifests() == members()


def test_nothing_the_build_copies_is_left_out_of_its_context() -> None:
    ignored = {line.strip() for line in IGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")}
    copied = {m.split("/")[0] for m in members()} | {"agent", "pyproject.toml", "uv.lock"}
    assert not copied & ignored, f"the build copies what its context leaves out: {sorted(copied & ignored)}"
