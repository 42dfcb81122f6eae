"""`python -m kubecheck --deploycheck BIN --root ROOT -k 1.33 -k 1.37`: one line per check, as
deploycheck prints them; exit 1 when any failed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate.version

from . import access, schema, settings, workloads
from .manifests import Obj, RenderError, render

KUBERNETES = Path("deploy/kubernetes")


def invariants(objs: list[Obj], root: Path, overlay: bool) -> list[str]:
    """gpulab's rules for an overlay (a whole deployment); the base alone is checked for what it holds."""
    checks: list[Callable[[], list[str]]] = [
        lambda: workloads.check_pods(objs),
        lambda: workloads.check_images(objs, pinned=overlay),
        lambda: settings.check_settings(objs, root / "Caddyfile"),
        lambda: access.check_secrets(objs, overlay),
    ]
    if overlay:
        checks += [
            lambda: workloads.check_scaling(objs),
            lambda: workloads.check_migrations(objs),
            lambda: access.check_services(objs),
            lambda: access.check_ingress(objs),
            lambda: access.check_network(objs),
        ]
    return [problem for check in checks for problem in check()]


def check(deploycheck: Path, root: Path, kustomization: Path, versions: list[str]) -> tuple[list[str], str]:
    """(problems, what was checked) for one kustomization directory."""
    overlay = kustomization.parent.name == "overlays"
    try:
        objs = render(deploycheck, root, root / kustomization)
    except RenderError as exc:
        return [f"kustomize build fails: {exc}"], ""
    problems, skipped = schema.validate(objs, versions)
    problems += invariants(objs, root, overlay)
    detail = f"{len(objs)} objects valid in Kubernetes {' and '.join(versions)} (strict)"
    detail += f"; skipped, no schema: {'; '.join(skipped)}" if skipped else "; nothing skipped"
    return problems, detail + ("; gpulab invariants hold" if overlay else "")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kubecheck", description=__doc__)
    parser.add_argument("--deploycheck", type=Path, required=True, help="the deploycheck binary (renders)")
    parser.add_argument("--root", type=Path, required=True, help="the repository root")
    parser.add_argument("-k", "--kubernetes-version", action="append", required=True, dest="versions")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    targets = [KUBERNETES / "base"] + sorted(
        p.relative_to(root) for p in (root / KUBERNETES / "overlays").iterdir() if p.is_dir()
    )
    failed = False
    for target in targets:
        problems, detail = check(args.deploycheck.resolve(), root, target, args.versions)
        label = str(target.relative_to(KUBERNETES.parent))
        if problems:
            failed = True
            print(f"FAIL  {label:<32} {len(problems)} problem(s)")  # noqa: T201
            for problem in problems:
                print(f"      - {problem}")  # noqa: T201
        else:
            print(f"ok    {label:<32} kubernetes-validate {kubernetes_validate.version.__version__}: {detail}")  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
