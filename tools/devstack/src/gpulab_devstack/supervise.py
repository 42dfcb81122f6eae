"""The local run's replicas: each one process of a service, its output prefixed with its name and
pid, started again with backoff when it dies (as compose's `restart:` and Kubernetes do), until the
run stops; and the embedded PostgreSQL and NATS, started again the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
# A replica that ran this long before it died starts again after the first backoff, not a longer one.
STABLE_AFTER_S = 30.0
STOP_GRACE_S = 15.0  # SIGTERM, then SIGKILL: the services drain in less (the gateway in 10 s)

Spawn = Callable[[dict[str, str]], Awaitable[asyncio.subprocess.Process]]
Line = Callable[[str, str], None]  # (label, text)


@dataclass
class Backoff:
    """Doubling delays from `first_s` up to `max_s`, back to `first_s` after a run of `stable_after_s`."""

    first_s: float = FIRST_BACKOFF_S
    max_s: float = MAX_BACKOFF_S
    stable_after_s: float = STABLE_AFTER_S
    _next_s: float = field(default=0.0, init=False)

    def after(self, ran_s: float) -> float:
        """How long to wait before the next start of a process that ran `ran_s` seconds."""
        if ran_s >= self.stable_after_s or self._next_s == 0.0:
            self._next_s = self.first_s
        delay = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        return delay


def exit_status(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"status {code}"


def died(name: str, pid: int, code: int, restarts: int, delay_s: float) -> str:
    return f"!! {name} (pid {pid}) exited, {exit_status(code)}; restart {restarts} in {delay_s:.1f}s"


class Replica:
    """One process slot of a service: `run()` keeps a process in it until `stop()`."""

    def __init__(
        self,
        service: str,
        index: int,
        env: dict[str, str],
        spawn: Spawn,
        line: Line,
        say: Callable[[str], None],
        metrics_port: int,
    ) -> None:
        self.service = service
        self.name = f"{service}.{index}"
        self.metrics_port = metrics_port  # 0: the process picked a free one
        self.env = {**env, "GPULAB_METRICS_PORT": str(metrics_port)}
        self._spawn = spawn
        self._line = line
        self._say = say
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.backoff = Backoff()
        self._stopping = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    @property
    def label(self) -> str:
        return f"{self.name}[{self.proc.pid}]" if self.proc is not None else self.name

    async def start(self) -> None:
        self.proc = await self._spawn(self.env)
        asyncio.create_task(self._pump(self.proc, self.label))

    async def run(self) -> None:
        """Start the process again whenever it exits, after the backoff, until the run stops."""
        while True:
            if self.proc is None:
                await self.start()
            assert self.proc is not None
            started = time.monotonic()
            code = await self.proc.wait()
            if self._stopping.is_set():
                return
            delay = self.backoff.after(time.monotonic() - started)
            self.restarts += 1
            self._say(died(self.name, self.proc.pid, code, self.restarts, delay))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            old = self.proc.pid
            await self.start()
            self._say(f"{self.name} restarted: pid {old} -> {self.proc.pid}")

    async def stop(self) -> None:
        self._stopping.set()
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def _pump(self, proc: asyncio.subprocess.Process, label: str) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            self._line(label, raw.decode(errors="replace").rstrip())


class Server(Protocol):
    """An embedded server: `start()` (again after a crash) sets `proc`."""

    proc: subprocess.Popen[bytes] | None

    def start(self) -> str: ...


class Keeper:
    """Starts an embedded server (PostgreSQL, NATS) again when it dies, with the replicas' backoff.

    `start()` runs in the event loop's thread, which must be the one that started the server first:
    its processes die with that thread (`die_with_parent`). The loop waits the seconds a start takes;
    the services meanwhile retry their connections, as they do when the server is elsewhere."""

    CHECK_EVERY_S = 0.5

    def __init__(self, name: str, server: Server, say: Callable[[str], None]) -> None:
        self.name = name
        self.server = server
        self.say = say
        self.restarts = 0
        self.backoff = Backoff()
        self._stopping = asyncio.Event()
        self._since = time.monotonic()

    async def run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.CHECK_EVERY_S)
            proc = self.server.proc
            if self._stopping.is_set() or proc is None or proc.poll() is None:
                continue
            delay = self.backoff.after(time.monotonic() - self._since)
            self.restarts += 1
            self.say(died(self.name, proc.pid, proc.returncode, self.restarts, delay))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            self._since = time.monotonic()
            try:
                self.server.start()
            except Exception as e:  # noqa: BLE001 (any failure: told, and tried again after the backoff)
                self.say(f"!! {self.name} did not start again: {e}")
                continue
            assert self.server.proc is not None
            self.say(f"{self.name} restarted: pid {proc.pid} -> {self.server.proc.pid}")

    def stop(self) -> None:
        self._stopping.set()
