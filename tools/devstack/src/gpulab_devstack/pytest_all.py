"""`make pytest`: every test folder in its own pytest process, then one summary line for all.

Each service keeps its tests in a package named `tests` (services/<name>/tests), as the layout
asks; several packages of one name cannot share one interpreter, so each folder gets its own
pytest run (and its own PostgreSQL and NATS, a few seconds each). Extra arguments go to every run.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOTS = ("libs", "tools", "services")


def test_folders(repo: Path) -> list[Path]:
    found = sorted(p for top in ROOTS for p in (repo / top).glob("*/tests") if any(p.glob("test_*.py")))
    if any((repo / "tests").glob("test_*.py")):
        found.append(repo / "tests")
    return found


def counts(report: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) from a JUnit XML report; errors count as failed."""
    if not report.exists():
        return 0, 0, 0
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    total = failed = skipped = 0
    for s in suites:
        total += int(s.get("tests", 0))
        failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def main(argv: list[str]) -> int:
    repo = Path.cwd()
    folders = test_folders(repo)
    passed = failed = skipped = 0
    bad: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for i, folder in enumerate(folders):
            rel = folder.relative_to(repo)
            report = Path(tmp) / f"{i}.xml"
            print(f"\n=== pytest {rel}", flush=True)  # noqa: T201
            code = subprocess.run(
                [sys.executable, "-m", "pytest", str(rel), f"--junitxml={report}", *argv], check=False
            ).returncode
            p, f, s = counts(report)
            passed, failed, skipped = passed + p, failed + f, skipped + s
            if code != 0:
                bad.append(f"{rel} (exit {code})")
    print(f"\npytest: {len(folders)} folders in {time.monotonic() - started:.0f}s")  # noqa: T201
    if bad:
        print("failed: " + ", ".join(bad))  # noqa: T201
    print(f"{passed} passed, {failed} failed, {skipped} skipped")  # noqa: T201
    return 1 if bad or failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
