"""`python -m gpulab_devstack.migrate_all identity pki ...`: migrate several services' schemas in turn."""

from __future__ import annotations

import importlib
import os
import sys

from gpulab_core import migrations


def main(services: list[str]) -> int:
    url = os.environ.get("GPULAB_DATABASE_URL")
    owner_url = os.environ.get("GPULAB_MIGRATION_DATABASE_URL") or None
    if not url:
        print("migrate_all: GPULAB_DATABASE_URL is not set", file=sys.stderr)  # noqa: T201
        return 2
    for name in services:
        module = importlib.import_module(f"gpulab_{name}.main")
        try:
            migrations.upgrade(module.SERVICE_DIR, module.spec.tables.schema, url, owner_url)
        except Exception as exc:
            print(f"migrate_all: {name}: {exc}", file=sys.stderr)  # noqa: T201
            return 1
        print(f"{name}: schema is at the latest migration")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
