"""The migrations create exactly what the models declare (identity_0004's per-user key uniqueness included)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from gpulab_core import db
from gpulab_devstack.testing import Stack
from gpulab_identity.models import SCHEMA, metadata


async def test_the_migrations_create_exactly_what_the_models_declare(migrated: Stack) -> None:
    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        if type_ == "schema":
            return name == SCHEMA
        return not (type_ == "table" and name == "alembic_version")  # Alembic's, in no model

    def diff(conn: Connection) -> list[Any]:
        opts = {"include_schemas": True, "include_name": include_name, "compare_type": True}
        return list(compare_metadata(MigrationContext.configure(conn, opts=opts), metadata))

    # Not the service's connection: with `identity` as its search_path, Alembic would see no schema.
    engine = db.create_engine(migrated.database_url, schema=None, app_name="identity-test")
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()
