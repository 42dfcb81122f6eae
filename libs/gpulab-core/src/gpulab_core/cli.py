"""The command line every service shares: `python -m gpulab_<name> [serve|migrate]`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from gpulab_core import migrations
from gpulab_core.runtime import ServiceSpec, serve
from gpulab_core.settings import CoreSettings, DatabaseSettings, load_settings, redact


def main(spec: ServiceSpec, service_dir: Path | None, argv: Sequence[str] | None = None) -> int:
    program = f"gpulab-{spec.name}"
    parser = argparse.ArgumentParser(prog=program, description=f"gpulab {spec.name} service")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the service until SIGTERM/SIGINT (the default)")
    if service_dir is not None:
        sub.add_parser("migrate", help="bring this service's schema to the latest migration, then exit")
    sub.add_parser("version", help="print the version")
    args = parser.parse_args(argv)

    if args.command == "migrate":
        # Only what migrating needs: the migrate job is not handed the service's other secrets.
        return _migrate(program, spec, service_dir, load_settings(migration_settings(spec.settings_cls), program))
    settings = load_settings(spec.settings_cls, program)
    if args.command == "version":
        print(f"{program} {spec.version}")  # noqa: T201
        return 0
    try:
        asyncio.run(serve(spec, settings))
    except ConnectionError as exc:
        print(f"{program}: {redact(str(exc))}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


def migration_settings(settings_cls: type[CoreSettings]) -> type[DatabaseSettings]:
    """The database settings of a service's `settings_cls`, with its defaults, and nothing else."""
    assert issubclass(settings_cls, DatabaseSettings), "a service with migrations reads DatabaseSettings"
    default = settings_cls.model_fields["database_url"].default

    class MigrationSettings(DatabaseSettings):
        database_url: str = default

    return MigrationSettings


def _migrate(program: str, spec: ServiceSpec, service_dir: Path | None, settings: DatabaseSettings) -> int:
    assert service_dir is not None, "only a service with migrations has the migrate command"
    assert spec.tables is not None, "a service with migrations owns a schema"
    try:
        migrations.upgrade(service_dir, spec.tables.schema, settings.database_url, settings.migration_database_url)
    except Exception as exc:
        # A driver's message may quote the URL it was given, password included.
        print(f"{program}: migration failed: {redact(str(exc))}", file=sys.stderr)  # noqa: T201
        return 1
    print(f"{program}: schema is at the latest migration")  # noqa: T201
    return 0
