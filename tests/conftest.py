"""Fixtures of the agent's end-to-end tests: the agent binary, built once per session."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .agent_support import AGENT_DIR, RECORDING, VERSION, Agents


@pytest.fixture(scope="session")
def agent_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent built the way `make -C agent build` builds it (static, version stamped), into a
    folder of this session, so that a build here never races one in agent/bin."""
    out = tmp_path_factory.mktemp("agent-bin") / "gpulab-agent"
    ldflags = f"-X github.com/gpulab/gpulab/agent/internal/version.Version={VERSION}"
    built = subprocess.run(
        ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(out), "./cmd/gpulab-agent"],
        cwd=AGENT_DIR,
        env={**os.environ, "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    return out


@pytest.fixture
def agents(agent_binary: Path, tmp_path: Path) -> Iterator[Agents]:
    made = Agents(agent_binary, tmp_path / "agent", RECORDING)
    yield made
    made.close()
