"""`make bench`: run every benchmark and print its table (copy the result into docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import sys

from bench import rpc


def main() -> int:
    asyncio.run(rpc.main(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
