"""Every SQL statement of the audit log: append (HMAC-chained), list, verify.

Each row's `hash` is HMAC-SHA256(key, prev_hash || canonical JSON of the row), keyed with identity's
GPULAB_AUDIT_HMAC_KEY, which is never stored in the database: whoever can write the table (the owner,
a superuser, a stolen backup restored) but lacks the key cannot re-chain rows they changed, removed
or added, and `verify` names the first one (docs/adr/0009)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from gpulab_core import pagination
from gpulab_core.contracts.identity import AuditEntry, AuditProblem, ListAuditRequest
from gpulab_identity.models import audit_log

GENESIS = bytes(32)
# Appends are serialised so that each row's prev_hash is the hash of the row before it.
_CHAIN_LOCK = zlib.crc32(b"gpulab-identity-audit-chain")


def canonical(
    *,
    id: uuid.UUID,
    at: datetime,
    actor_id: uuid.UUID | None,
    actor_email: str | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    details: dict[str, Any],
) -> bytes:
    body = {
        "id": str(id),
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_id": str(actor_id) if actor_id else None,
        "actor_email": actor_email,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "details": details,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain(key: bytes, prev_hash: bytes, row_bytes: bytes) -> bytes:
    return hmac.new(key, prev_hash + row_bytes, hashlib.sha256).digest()


# Where a session carries the chain's key: set once on identity's session factory (`keyed`), so every
# writer of the log has it and none can append an unkeyed row by forgetting to pass it.
KEY_INFO = "gpulab_audit_hmac_key"


def keyed(sessions: async_sessionmaker[AsyncSession], key: bytes) -> async_sessionmaker[AsyncSession]:
    """`sessions`, whose sessions append and verify with `key` (GPULAB_AUDIT_HMAC_KEY)."""
    sessions.configure(info={KEY_INFO: key})
    return sessions


def session_key(session: AsyncSession) -> bytes:
    key = session.info.get(KEY_INFO)
    if not isinstance(key, bytes) or not key:
        raise RuntimeError("this session has no audit chain key (audit.repository.keyed with GPULAB_AUDIT_HMAC_KEY)")
    return key


async def append(
    session: AsyncSession,
    *,
    action: str,
    actor_id: uuid.UUID | None = None,
    actor_email: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> uuid.UUID:
    """Append one row; `at` is when it happened (an event's time), now when not given.

    Rows chain in append order (seq), so an `at` earlier than the row before it is fine.
    """
    key = session_key(session)
    await lock_chain(session)
    prev = await session.scalar(select(audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1))
    entry_id = uuid.uuid4()
    # Microseconds are what PostgreSQL keeps: hash exactly what will be read back. A naive time is
    # taken as UTC (what every producer means), not as this host's local time as astimezone() would.
    at = datetime.now(UTC) if at is None else at.replace(tzinfo=at.tzinfo or UTC).astimezone(UTC)
    fields: dict[str, Any] = {
        "id": entry_id,
        "at": at,
        "actor_id": actor_id,
        "actor_email": actor_email,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "details": details or {},
    }
    prev_hash = prev or GENESIS
    await session.execute(
        audit_log.insert().values(**fields, prev_hash=prev_hash, hash=chain(key, prev_hash, canonical(**fields)))
    )
    return entry_id


async def lock_chain(session: AsyncSession) -> None:
    """Serialise with every append until the transaction ends (an append takes it again: it nests)."""
    await session.execute(select(func.pg_advisory_xact_lock(_CHAIN_LOCK)))


async def recent_refusals(session: AsyncSession, action: str, since: datetime) -> list[str | None]:
    """The client address of each `action` row since `since` (ix_audit_log_at: one window's rows)."""
    query = select(audit_log.c.details["client_ip"].astext).where(audit_log.c.action == action, audit_log.c.at >= since)
    return list((await session.execute(query)).scalars())


# What an AuditEntry shows (the chain's hashes stay for `verify`).
_LISTED = (
    audit_log.c.id,
    audit_log.c.at,
    audit_log.c.actor_id,
    audit_log.c.actor_email,
    audit_log.c.action,
    audit_log.c.target_type,
    audit_log.c.target_id,
    audit_log.c.details,
)


def _entry(row: Row[*tuple[Any, ...]]) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor_id=row.actor_id,
        actor_email=row.actor_email,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        details=row.details,
    )


async def list_entries(session: AsyncSession, req: ListAuditRequest) -> tuple[list[AuditEntry], str | None]:
    """Newest first; the cursor is the last row's seq."""
    conds = []
    if req.actor_id is not None:
        conds.append(audit_log.c.actor_id == req.actor_id)
    if req.action is not None:
        conds.append(audit_log.c.action == req.action)
    if req.target_type is not None:
        conds.append(audit_log.c.target_type == req.target_type)
    if req.target_id is not None:
        conds.append(audit_log.c.target_id == req.target_id)
    if req.since is not None:
        conds.append(audit_log.c.at >= req.since)
    if req.until is not None:
        conds.append(audit_log.c.at < req.until)
    if req.cursor:
        (seq,) = pagination.decode(req.cursor, 1)
        if not isinstance(seq, int):
            seq = -1
        conds.append(audit_log.c.seq < seq)
    query = (
        select(*_LISTED, audit_log.c.seq)
        .where(and_(True, *conds))
        .order_by(audit_log.c.seq.desc())
        .limit(req.limit + 1)
    )
    rows = (await session.execute(query)).all()
    more = len(rows) > req.limit
    rows = rows[: req.limit]
    return [_entry(r) for r in rows], pagination.encode(rows[-1].seq) if more and rows else None


# Why a row fails: its prev_hash is not the hash of the row before it (a row before it was removed,
# inserted or re-hashed), or its own fields do not hash to its stored hash (the row was altered).
CHAIN_BROKEN: AuditProblem = "chain_broken"
ROW_ALTERED: AuditProblem = "row_altered"


@dataclass(frozen=True)
class Verification:
    rows: int  # rows found intact, from the first one checked on
    broken_at_seq: int | None  # the first row whose hash or link does not match
    broken_id: uuid.UUID | None
    problem: AuditProblem | None = None  # with broken_at_seq
    finished: bool = True  # False: stopped at the deadline before the end, intact so far
    last_seq: int = 0  # the last intact row checked (0: none), and its hash: where to go on from
    last_hash: bytes = GENESIS

    @property
    def intact(self) -> bool:
        return self.broken_at_seq is None


async def verify(
    conn: AsyncConnection,
    key: bytes,
    batch: int = 1000,
    *,
    after_seq: int = 0,
    prev_hash: bytes = GENESIS,
    deadline: float | None = None,
) -> Verification:
    """Recompute the chain in seq order; stream in batches so the log can be large.

    From the start by default; or after row `after_seq` whose hash is `prev_hash` (a check that
    goes on where an earlier one stopped). With a `deadline` (time.monotonic()), it stops after
    the batch that passes it, `finished=False`, at least one batch checked.
    """
    prev = prev_hash
    count = 0
    last_seq = after_seq
    while True:
        rows = (
            await conn.execute(
                select(audit_log).where(audit_log.c.seq > last_seq).order_by(audit_log.c.seq).limit(batch)
            )
        ).all()
        if not rows:
            return Verification(count, None, None, last_seq=last_seq, last_hash=prev)
        for r in rows:
            expected = chain(
                key,
                prev,
                canonical(
                    id=r.id,
                    at=r.at,
                    actor_id=r.actor_id,
                    actor_email=r.actor_email,
                    action=r.action,
                    target_type=r.target_type,
                    target_id=r.target_id,
                    details=r.details,
                ),
            )
            # The link first: a removed row also leaves the next row's own hash unmatched, and
            # "the chain is broken here" is the truer account of it.
            if bytes(r.prev_hash) != prev:
                return Verification(count, r.seq, r.id, CHAIN_BROKEN, last_seq=last_seq, last_hash=prev)
            if bytes(r.hash) != expected:
                return Verification(count, r.seq, r.id, ROW_ALTERED, last_seq=last_seq, last_hash=prev)
            prev = bytes(r.hash)
            count += 1
            last_seq = r.seq
        if deadline is not None and time.monotonic() >= deadline and len(rows) == batch:
            return Verification(count, None, None, finished=False, last_seq=last_seq, last_hash=prev)
