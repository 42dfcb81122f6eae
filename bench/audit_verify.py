"""`audit.verify`'s cost: identity's chain check over N audit rows against a bare baseline, the same
rows only read (the same batched queries, no hashing). Tells how many rows one call's budget covers."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gpulab_core import db
from gpulab_devstack.servers import EmbeddedPostgres, free_port
from gpulab_identity.audit import repository as audit
from gpulab_identity.models import SCHEMA, audit_log

BATCH = 1000  # what the service uses
RUNS = 3


def rows(n: int, prev: bytes) -> list[dict[str, Any]]:
    """N rows shaped like a login's (the most common row), chained after `prev` as `append` chains them."""
    start = datetime.now(UTC) - timedelta(days=365)
    out = []
    for i in range(n):
        actor = uuid.uuid4()
        fields: dict[str, Any] = {
            "id": uuid.uuid4(),
            "at": start + timedelta(seconds=i),
            "actor_id": actor,
            "actor_email": f"user{i}@example.org",
            "action": "auth.login",
            "target_type": "user",
            "target_id": str(actor),
            "details": {"client_ip": "203.0.113.9"},
        }
        digest = audit.chain(prev, audit.canonical(**fields))
        out.append({**fields, "prev_hash": prev, "hash": digest})
        prev = digest
    return out


async def bare(conn: Any) -> int:
    """The same batched reads as `verify`, without the hashing: what the database alone costs."""
    last, count = 0, 0
    while True:
        batch = (
            await conn.execute(select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(BATCH))
        ).all()
        if not batch:
            return count
        count += len(batch)
        last = batch[-1].seq


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench audit")
    parser.add_argument("-n", type=int, action="append", help="rows (repeatable); default 10,000 and 100,000")
    args = parser.parse_args(argv)
    sizes = args.n or [10_000, 100_000]
    print("audit.verify: the hash chain recomputed, against the same rows only read")  # noqa: T201
    print("| rows | bare read ms | verify ms | ratio | rows/s verified | rows per 2.5 s call |")  # noqa: T201
    print("|---|---|---|---|---|---|")  # noqa: T201
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg", free_port())
        pg.start()
        try:
            env = {**os.environ, "GPULAB_DATABASE_URL": pg.app_url, "GPULAB_MIGRATION_DATABASE_URL": pg.url}
            subprocess.run([sys.executable, "-m", "gpulab_identity", "migrate"], env=env, check=True, capture_output=True)
            engine = db.create_engine(pg.url, schema=SCHEMA, app_name="bench-audit")
            have = 0
            for n in sorted(sizes):
                async with engine.begin() as conn:
                    # The owner writes them straight in: the chain continues from the rows already there.
                    last = await conn.scalar(select(audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1))
                    more = rows(n - have, bytes(last) if last else audit.GENESIS)
                    for i in range(0, len(more), 5000):
                        await conn.execute(audit_log.insert(), more[i : i + 5000])
                have = n
                read_s, verify_s = [], []
                for _ in range(RUNS):
                    async with engine.connect() as conn:
                        t = time.perf_counter()
                        assert await bare(conn) == n
                        read_s.append(time.perf_counter() - t)
                        t = time.perf_counter()
                        result = await audit.verify(conn, BATCH)
                        verify_s.append(time.perf_counter() - t)
                        assert result.intact and result.rows == n
                r, v = min(read_s), min(verify_s)
                print(f"| {n:,} | {r * 1000:,.0f} | {v * 1000:,.0f} | {v / r:.1f} | {n / v:,.0f} | {n / v * 2.5:,.0f} |")  # noqa: T201
            await engine.dispose()
        finally:
            pg.stop()

