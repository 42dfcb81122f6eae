"""A bare outbox relay process for the crash tests: `python relay_process.py DB_URL NATS_URL SCHEMA BATCH`."""

from __future__ import annotations

import asyncio
import sys

# Only what a relay needs, so that each restart of this process is quick.
from gpulab_core import db, events
from gpulab_core.natsconn import connect_nats
from gpulab_core.outbox import OutboxRelay, outbox_table


async def main(url: str, nats_url: str, schema: str, batch: int) -> None:
    nc = await connect_nats(nats_url, "relay-under-test")
    js = nc.jetstream()
    await events.ensure_stream(js)
    engine = db.create_engine(url, schema=schema, app_name="relay-under-test")
    relay = OutboxRelay(
        engine, js, outbox_table(db.make_metadata(schema)), dsn=url, batch_size=batch, poll_interval_s=0.05
    )
    print("ready", flush=True)  # noqa: T201
    await relay.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
