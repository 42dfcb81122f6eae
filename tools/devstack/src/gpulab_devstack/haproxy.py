"""The real HAProxy for tests of what runs behind compose's grpc-front (deploy/haproxy/haproxy.cfg):
Debian's package, which `make system-deps` installs as root. Tests that need it skip, saying so,
where it is missing."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

HAPROXY = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
MISSING = "haproxy is not installed (as root, make system-deps installs it; or: sudo apt-get install haproxy)"
START_TIMEOUT_S = 10.0


@contextlib.contextmanager
def running(folder: Path, config: str) -> Iterator[Path]:
    """HAProxy in the foreground with `config` (its `bind 127.0.0.1:PORT` lines listening once this
    yields); yields the file its stdout and stderr go to (`log stdout` lines included)."""
    if HAPROXY is None:
        raise RuntimeError(MISSING)
    cfg, log = folder / "haproxy.cfg", folder / "haproxy.log"
    cfg.write_text(config)
    ports = [int(p) for p in re.findall(r"^\s*bind 127\.0\.0\.1:(\d+)", config, re.MULTILINE)]
    with log.open("wb") as out:
        proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            for port in ports:
                while True:
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        if proc.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError(f"haproxy did not listen on {port}: {log.read_text()}") from None
                        time.sleep(0.05)
            yield log
        finally:
            proc.terminate()
            proc.wait(timeout=10)
