"""`make bench`: run every benchmark and print its table (copy the result into docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import sys

from bench import agent_footprint, assign, audit_verify, fleet, heartbeat, lists, requests, rpc

BENCHMARKS = {
    "rpc": rpc.main,
    "lists": lists.main,
    "heartbeat": heartbeat.main,
    "fleet": fleet.main,
    "assign": assign.main,
    "requests": requests.main,
    "agent": agent_footprint.main,
    "audit": audit_verify.main,
}


def main() -> int:
    """`python -m bench [name ...] [-- options]`: all benchmarks by default."""
    names = [a for a in sys.argv[1:] if a in BENCHMARKS] or list(BENCHMARKS)
    options = [a for a in sys.argv[1:] if a not in BENCHMARKS]
    for name in names:
        asyncio.run(BENCHMARKS[name](options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
