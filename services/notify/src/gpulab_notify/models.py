"""The notify schema: its tables are declared on this metadata (outbox and processed events included)."""

from sqlalchemy.orm import DeclarativeBase

from gpulab_core.runtime import ServiceTables

SCHEMA = "notify"
tables = ServiceTables.for_schema(SCHEMA)
metadata = tables.metadata


class Base(DeclarativeBase):
    """ORM models of the notify schema share the metadata (and naming convention) of the core tables."""

    metadata = metadata
