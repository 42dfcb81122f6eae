"""The identity schema. Tables are SQLAlchemy Core tables on the service's metadata, grouped by aggregate."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from gpulab_core.runtime import ServiceTables

SCHEMA = "identity"
tables = ServiceTables.for_schema(SCHEMA)
metadata = tables.metadata


def _now() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    # Stored as given (trimmed); uniqueness and lookups are case-insensitive on lower(email).
    Column("email", Text, nullable=False),
    Column("name", Text),
    Column("role", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("password_hash", Text),
    # Grows with every change of the user's SSH keys: the `version` of identity.ssh_keys_changed.
    Column("ssh_keys_version", BigInteger, nullable=False, server_default=text("0")),
    _now(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("role IN ('admin', 'user')", name="role"),
    CheckConstraint("status IN ('invited', 'active', 'disabled')", name="status"),
    CheckConstraint("status = 'invited' OR password_hash IS NOT NULL", name="active_has_password"),
)
Index("uq_users_email_lower", func.lower(users.c.email), unique=True)

invites = Table(
    "invites",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    # sha256 of the token: the token itself is never stored.
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    # Set when a newer invite for the same user replaced this one.
    Column("replaced_at", DateTime(timezone=True)),
    Column("created_by", UUID(as_uuid=True)),
    _now(),
    Column("delivery_state", Text),
    Column("delivery_detail", Text),
    Column("delivery_updated_at", DateTime(timezone=True)),
)
Index("ix_invites_user_id", invites.c.user_id)

sessions = Table(
    "sessions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("csrf_token", Text, nullable=False),
    _now(),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("client_ip", Text),
)
Index("ix_sessions_user_id", sessions.c.user_id, postgresql_where=text("ended_at IS NULL"))

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("account", Text, nullable=False),  # lower(email) as typed, whether or not it exists
    Column("client_ip", Text),  # the client's address, as the gateway resolved it
    # What the limits count by: the address, or its /64 for IPv6 (auth/service.py, address_key).
    Column("client_net", Text),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_login_failures_client_net_at", login_failures.c.client_net, login_failures.c.at)
Index(
    "ix_login_failures_account_client_net_at",
    login_failures.c.account,
    login_failures.c.client_net,
    login_failures.c.at,
)

ssh_keys = Table(
    "ssh_keys",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    Column("type", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("public_key", Text, nullable=False),
    _now(),
    # Unique per user, not globally: a public key is public, and a global rule let anyone who
    # registered a colleague's key first keep the colleague from adding it (identity_0004). Its
    # index, led by user_id, also serves every per-user query.
    UniqueConstraint("user_id", "fingerprint"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column("id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor_id", UUID(as_uuid=True)),
    Column("actor_email", Text),
    Column("action", Text, nullable=False),
    Column("target_type", Text),
    Column("target_id", Text),
    Column("details", JSONB, nullable=False),
    # HMAC-SHA256(GPULAB_AUDIT_HMAC_KEY, prev_hash || canonical row): altering, inserting or removing
    # a row breaks the chain, and without the key (never in the database) it cannot be re-chained.
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    comment="append-only: the services' role may only SELECT and INSERT; a trigger refuses UPDATE/DELETE/TRUNCATE",
)
Index("ix_audit_log_actor_id", audit_log.c.actor_id)
Index("ix_audit_log_action", audit_log.c.action)
Index("ix_audit_log_target", audit_log.c.target_type, audit_log.c.target_id)
Index("ix_audit_log_at", audit_log.c.at)

groups = Table(
    "groups",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    _now(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Soft delete: usage rows and the audit log still name a deleted group (groups.names).
    Column("deleted_at", DateTime(timezone=True)),
)
# A live group's name is unique (case-insensitive); a deleted group's name may be taken again.
Index("uq_groups_name_live", func.lower(groups.c.name), unique=True, postgresql_where=text("deleted_at IS NULL"))

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", UUID(as_uuid=True), ForeignKey(groups.c.id, ondelete="CASCADE"), primary_key=True),
    Column("user_id", UUID(as_uuid=True), ForeignKey(users.c.id, ondelete="CASCADE"), primary_key=True),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# groups.of_user and groups.membership look members up by user.
Index("ix_group_members_user_id", group_members.c.user_id)
