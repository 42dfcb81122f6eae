"""`python -m gpulab_devstack.migrate_all identity pki ...`: migrate several services' schemas in turn.

Each schema is migrated by the owner (`GPULAB_MIGRATION_DATABASE_URL`), which then grants that
service's own role (the user of `GPULAB_<SERVICE>_DATABASE_URL`) DML on it and nothing else.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable

from gpulab_core import migrations
from gpulab_core.settings import redact


def role_env(service: str) -> str:
    """The variable naming `service`'s own database URL for this command."""
    return f"GPULAB_{service.upper()}_DATABASE_URL"


def role_urls(url_of: Callable[[str], str], services: Iterable[str] | None = None) -> dict[str, str]:
    """`GPULAB_<SERVICE>_DATABASE_URL` for every service that owns a schema."""
    from gpulab_devstack.servers import DATABASE_SERVICES

    return {role_env(s): url_of(s) for s in services or DATABASE_SERVICES}


def main(services: list[str]) -> int:
    owner_url = os.environ.get("GPULAB_MIGRATION_DATABASE_URL") or None
    for name in services:
        # A service's own URL, or (with one database role for every service, e.g. your own PostgreSQL
        # in the local run) GPULAB_DATABASE_URL.
        url = os.environ.get(role_env(name)) or os.environ.get("GPULAB_DATABASE_URL")
        if not url:
            print(f"migrate_all: neither {role_env(name)} nor GPULAB_DATABASE_URL is set", file=sys.stderr)  # noqa: T201
            return 2
        module = importlib.import_module(f"gpulab_{name}.main")
        try:
            migrations.upgrade(module.SERVICE_DIR, module.spec.tables.schema, url, owner_url)
        except Exception as exc:
            print(f"migrate_all: {name}: {redact(str(exc))}", file=sys.stderr)  # noqa: T201
            return 1
        print(f"{name}: schema is at the latest migration")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
