"""The migrations create exactly what the models declare; scheduler_0003 fills the GPUs placed before it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gpulab_devstack.testing import Stack
from gpulab_scheduler.models import SCHEMA, metadata

from .conftest import Cluster

VERSIONS = Path(__file__).resolve().parents[1] / "migrations" / "versions"


def migration(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, VERSIONS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_migrations_create_exactly_what_the_models_declare(cluster: Cluster, migrated: Stack) -> None:  # noqa: ARG001
    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        if type_ == "schema":
            return name == SCHEMA
        return not (type_ == "table" and name == "alembic_version")  # Alembic's, in no model

    def diff(conn: Connection) -> list[Any]:
        opts = {"include_schemas": True, "include_name": include_name, "compare_type": True}
        return list(compare_metadata(MigrationContext.configure(conn, opts=opts), metadata))

    # The owner's connection (cluster.engine): with `scheduler` as its search_path Alembic would see no schema.
    async with cluster.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_gpus_placed_before_scheduler_0003_get_their_name_and_memory_from_the_node(cluster: Cluster) -> None:
    node = await cluster.node(2)
    env = await cluster.environment([node])
    made = await cluster.assign(await cluster.user(), env, 2)
    async with cluster.engine.begin() as conn:
        # As a row written before the columns existed.
        await conn.execute(
            text("UPDATE scheduler.assignment_gpus SET gpu_name = NULL, gpu_memory_mb = NULL WHERE assignment_id = :a"),
            {"a": made["id"]},
        )
        await conn.execute(text(migration("20261207_1000_assignment_gpu_facts").BACKFILL))
    again = await cluster.call("assignments.get", {"id": made["id"]})
    assert again["gpus"] == made["gpus"]
    assert {(g["name"], g["memory_mb"]) for g in again["gpus"]} == {("NVIDIA A100-SXM4-80GB", 81920)}
    await cluster.call("assignments.revoke", {"id": made["id"]})
