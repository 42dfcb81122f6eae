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
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core import db
from gpulab_devstack.servers import EmbeddedPostgres, free_port
from gpulab_identity.audit import repository as audit
from gpulab_identity.models import SCHEMA, audit_log

BATCH = 1000  # what the service uses
# The chain's key (identity's GPULAB_AUDIT_HMAC_KEY): any value, the cost is the same.
BENCH_KEY = b"bench-audit-hmac-key-0123456789abcdef"
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
        digest = audit.chain(BENCH_KEY, prev, audit.canonical(**fields))
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


async def fill(engine: AsyncEngine, have: int, n: int) -> None:
    """The owner writes rows straight in, up to n; the chain goes on from the rows already there."""
    async with engine.begin() as conn:
        last = await conn.scalar(select(audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1))
        more = rows(n - have, bytes(last) if last else audit.GENESIS)
        for i in range(0, len(more), 5000):
            await conn.execute(audit_log.insert(), more[i : i + 5000])


async def measure(engine: AsyncEngine, n: int) -> tuple[float, float]:
    """Best of RUNS: (seconds to read every row, seconds to verify the chain)."""
    read_s, verify_s = [], []
    for _ in range(RUNS):
        async with engine.connect() as conn:
            t = time.perf_counter()
            read = await bare(conn)
            read_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            result = await audit.verify(conn, BENCH_KEY, BATCH)
            verify_s.append(time.perf_counter() - t)
        if read != n or not result.intact or result.rows != n:
            raise RuntimeError(f"expected {n} intact rows, read {read}, verified {result}")
    return min(read_s), min(verify_s)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench audit")
    parser.add_argument("-n", type=int, action="append", help="rows (repeatable); default 10,000 and 100,000")
    args = parser.parse_args(argv)
    sizes = sorted(args.n or [10_000, 100_000])
    print("audit.verify: the hash chain recomputed, against the same rows only read")  # noqa: T201
    print("| rows | bare read ms | verify ms | ratio | rows/s verified | rows per 2.5 s call |")  # noqa: T201
    print("|---|---|---|---|---|---|")  # noqa: T201
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg", free_port())
        pg.start()
        try:
            env = {
                **os.environ,
                "GPULAB_DATABASE_URL": pg.service_url("identity"),
                "GPULAB_MIGRATION_DATABASE_URL": pg.url,
            }
            migrate = [sys.executable, "-m", "gpulab_identity", "migrate"]
            subprocess.run(migrate, env=env, check=True, capture_output=True)
            engine = db.create_engine(pg.url, schema=SCHEMA, app_name="bench-audit")
            try:
                have = 0
                for n in sizes:
                    await fill(engine, have, n)
                    have = n
                    r, v = await measure(engine, n)
                    cells = [f"{n:,}", f"{r * 1000:,.0f}", f"{v * 1000:,.0f}", f"{v / r:.1f}", f"{n / v:,.0f}"]
                    print(f"| {' | '.join(cells)} | {n / v * 2.5:,.0f} |")  # noqa: T201
            finally:
                await engine.dispose()
        finally:
            pg.stop()
