"""The pki schema: its tables are declared on this metadata (outbox and processed events included)."""

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    LargeBinary,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from gpulab_core.runtime import ServiceTables

SCHEMA = "pki"
tables = ServiceTables.for_schema(SCHEMA)
metadata = tables.metadata


def _created() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


# The one CA. `id` is always 1, so a second root can never be inserted, even by a racing replica.
authority = Table(
    "authority",
    metadata,
    Column("id", SmallInteger, primary_key=True, server_default=text("1")),
    Column("key_pem", Text, nullable=False),  # encrypted PKCS#8 ("ENCRYPTED PRIVATE KEY") only
    Column("certificate_pem", Text, nullable=False),
    Column("sha256_fingerprint", Text, nullable=False),
    _created(),
    CheckConstraint("id = 1", name="single_row"),
    CheckConstraint("key_pem LIKE '-----BEGIN ENCRYPTED PRIVATE KEY-----%'", name="key_encrypted"),
)

enrollment_tokens = Table(
    "enrollment_tokens",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("node_id", UUID(as_uuid=True), nullable=False),
    # sha256 of the token: the token itself is never stored.
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    # Set when a newer token for the node replaced this one, or the node was deleted.
    Column("invalidated_at", DateTime(timezone=True)),
    Column("created_by", UUID(as_uuid=True)),
    _created(),
)
Index(
    "ix_enrollment_tokens_node_id_open",
    enrollment_tokens.c.node_id,
    postgresql_where=text("used_at IS NULL AND invalidated_at IS NULL"),
)

# Every node certificate issued, so that Renew can refuse one we never issued or revoked.
certificates = Table(
    "certificates",
    metadata,
    Column("serial", Text, primary_key=True),  # 40 lowercase hex digits (ca.serial_hex)
    Column("node_id", UUID(as_uuid=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column("previous_serial", Text),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("kind IN ('enrollment', 'renewal')", name="kind"),
    CheckConstraint("kind = 'enrollment' OR previous_serial IS NOT NULL", name="renewal_has_previous"),
    CheckConstraint("serial ~ '^[0-9a-f]{40}$'", name="serial_hex"),
)
Index("ix_certificates_node_id", certificates.c.node_id)
Index("ix_certificates_revoked", certificates.c.not_after, postgresql_where=text("revoked_at IS NOT NULL"))

# Bookkeeping only: which listener certificates the CA signed, for whom, valid until when.
server_certificates = Table(
    "server_certificates",
    metadata,
    Column("serial", Text, primary_key=True),
    Column("purpose", Text, nullable=False),  # 'enrollment' (pki's own port) or 'signed' (sign_server)
    Column("dns_names", ARRAY(Text), nullable=False),
    Column("ip_addresses", ARRAY(Text), nullable=False),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("purpose IN ('enrollment', 'signed')", name="purpose"),
)
