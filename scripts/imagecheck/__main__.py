"""`python -m scripts.imagecheck`: see the package's docstring."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import scripts.imagecheck as imagecheck
from scripts.imagecheck.bases import stand_in_bases, stand_in_web_bases
from scripts.imagecheck.buildah import REPO, say, size
from scripts.imagecheck.services import SERVICES, build, check_image, run_system
from scripts.imagecheck.web import build_web, check_web


def main() -> int:
    parser = argparse.ArgumentParser(prog="imagecheck", description=(imagecheck.__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stand-in-bases", action="store_true", help="make local stand-ins of the base images first")
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated (default: all six)")
    parser.add_argument("--web", action="store_true", help="also the web app's image (deploy/docker/web.Dockerfile)")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("buildah") is None:
        say("imagecheck needs root and buildah (apt-get install buildah; debootstrap for --stand-in-bases)")
        return 2
    services = [s for s in args.services.split(",") if s]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory(prefix="gpulab-imagecheck-bases-") as work:
        if args.stand_in_bases:
            stand_in_bases(Path(work))
            if args.web:
                stand_in_web_bases()
    images: dict[str, str] = {}
    problems: list[str] = []
    say("| image | built in s | size | checks |")
    say("|---|---|---|---|")
    for service in services:
        image, seconds = build(service, commit.strip() or "unknown")
        images[service] = image
        found = check_image(service, image)
        problems += [f"{service}: {p}" for p in found]
        say(f"| {service} | {seconds:.0f} | {size(image)} | {'; '.join(found) or 'ok'} |")
    if args.web:
        image, seconds = build_web()
        found = check_web(image)
        problems += [f"web: {p}" for p in found]
        say(f"| web | {seconds:.0f} | {size(image)} | {'; '.join(found) or 'ok'} |")
    if not problems and images:
        problems += asyncio.run(run_system(images))
    for problem in problems:
        say(f"FAIL {problem}")
    built = len(images) + args.web
    summary = f"ok: {built} images built and checked, {len(images)} run together"
    say("imagecheck: " + ("FAILED" if problems else summary))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
