"""Each Kubernetes check is shown to fail on a broken copy of the real manifests, as
deploycheck_test.go does for compose.yaml. Run by `make -C tools/deploycheck check`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kubecheck.__main__ import check
from kubecheck.broken import BROKEN, MORE, Edit
from kubecheck.broken_access import BROKEN_ACCESS

REPO = Path(__file__).resolve().parents[3]
DEPLOYCHECK = Path(os.environ.get("DEPLOYCHECK", REPO / "tools" / "deploycheck" / "bin" / "deploycheck"))
# The oldest of the versions `make check` validates against: the broken copies break gpulab's rules
# or one schema, so one version shows each (and each extra version costs every case a second pass).
VERSIONS = os.environ.get("KUBERNETES_VERSIONS", "1.33 1.37").split()[:1]
PRODUCTION = Path("deploy/kubernetes/overlays/production")


def problems_of(tmp_path: Path, *edits: Edit, target: Path = PRODUCTION) -> list[str]:
    """The problems kubecheck reports for the production overlay of an edited copy of the repository's
    manifests (and Caddyfile). An edit whose text is not there exactly once fails the test instead."""
    shutil.copytree(
        REPO / "deploy" / "kubernetes", tmp_path / "deploy" / "kubernetes", ignore=shutil.ignore_patterns("secrets")
    )
    shutil.copy(REPO / "Caddyfile", tmp_path / "Caddyfile")
    for file, old, new in edits:
        path = tmp_path / "deploy" / "kubernetes" / file
        text = path.read_text()
        assert text.count(old) == 1, f"edit of {file}: {old!r} occurs {text.count(old)} times, want exactly 1"
        path.write_text(text.replace(old, new))
    problems, _ = check(DEPLOYCHECK, tmp_path, target, VERSIONS)
    return problems


def test_the_repository_manifests_pass_every_check(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == []


def test_an_operators_secrets_are_never_read(tmp_path: Path) -> None:
    real = tmp_path / "deploy" / "kubernetes" / "overlays" / "production" / "secrets"
    shutil.copytree(REPO / PRODUCTION / "secrets.example", real)
    (real / "audit-hmac-key.env").write_text("key=a-real-key-that-must-never-reach-a-log\n")
    shutil.copytree(REPO / "deploy", tmp_path / "deploy", dirs_exist_ok=True, ignore=shutil.ignore_patterns("secrets"))
    shutil.copy(REPO / "Caddyfile", tmp_path / "Caddyfile")
    problems, _ = check(DEPLOYCHECK, tmp_path, PRODUCTION, VERSIONS)
    assert problems == [], "the example's placeholders were rendered, not secrets/"


@pytest.mark.parametrize(("edits", "want"), [pytest.param(e, w, id=n) for n, e, w in BROKEN + BROKEN_ACCESS + MORE])
def test_each_broken_copy_is_refused(tmp_path: Path, edits: list[Edit], want: str) -> None:
    problems = problems_of(tmp_path, *edits)
    assert any(want in p for p in problems), f"no problem mentions {want!r}:\n" + "\n".join(problems)


def test_a_secret_in_the_base_is_refused(tmp_path: Path) -> None:
    edit = (
        "base/kustomization.yaml",
        "configMapGenerator:\n",
        "secretGenerator:\n  - {name: x, literals: [a=b]}\nconfigMapGenerator:\n",
    )
    problems = problems_of(tmp_path, edit, target=Path("deploy/kubernetes/base"))
    assert any("the base holds Secrets ['x-" in p for p in problems), problems
