"""One message-size limit everywhere: production's nats-server, the local run's and the tests'."""

from __future__ import annotations

import re
from pathlib import Path

from nats.aio.client import Client as NATS

from gpulab_core.events import MAX_MESSAGE_BYTES

REPO = Path(__file__).resolve().parents[3]
# nats-server's size suffixes (conf/parse.go): binary multiples.
_UNITS = {"": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def test_production_nats_allows_the_constant() -> None:
    conf = (REPO / "deploy/nats/nats.conf").read_text()
    found = re.search(r"^max_payload:\s*(\d+)\s*([KMG]B)?\s*$", conf, re.MULTILINE)
    assert found is not None, "deploy/nats/nats.conf states no max_payload"
    assert int(found[1]) * _UNITS[found[2] or ""] == MAX_MESSAGE_BYTES


async def test_the_tests_nats_allows_exactly_production_s_limit(nc: NATS) -> None:
    assert nc.max_payload == MAX_MESSAGE_BYTES
