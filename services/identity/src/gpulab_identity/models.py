"""The identity schema: its tables are declared on this metadata (outbox and processed events included)."""

from gpulab_core.runtime import ServiceTables

SCHEMA = "identity"
tables = ServiceTables.for_schema(SCHEMA)
metadata = tables.metadata
