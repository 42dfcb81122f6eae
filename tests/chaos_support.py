"""What the chaos test (test_chaos.py) is made of: its settings, the REST client that retries through
kills, the killer, the invite mails, and the watcher that samples who holds each GPU."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import random
import re
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from .agent_support import Agents, assignments_in
from .test_devrun import Runner

ADMIN_EMAIL = "chaos-admin@lab.example"
PASSWORD = "chaos-password-0123456789"
SERVICES = ("identity", "pki", "inventory", "scheduler", "notify", "gateway")
REPLICAS = 2
CHAOS_S = float(os.environ.get("GPULAB_CHAOS_SECONDS", "40"))
KILL_EVERY_S = (2.0, 4.0)  # a random pause between kills, in this range
RETRY_FOR_S = 120.0  # how long one REST call is retried through kills before the test gives up
SETTLE_S = 120.0  # after the chaos: how long the system gets to converge


def seed() -> int:
    given = os.environ.get("GPULAB_CHAOS_SEED")
    return int(given) if given else random.SystemRandom().randrange(2**32)


class Api:
    """One signed-in person's REST calls, retried through kills: a transport error or a 502/503/504
    is tried again (the replica that took it died, or its dependency is coming back); any other
    status that is not among those expected fails the test."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.AsyncClient(base_url=f"{base_url}/api/v1", timeout=15)
        self.csrf = ""
        self.retries = 0

    async def call(
        self, method: str, path: str, body: Any = None, *, expect: tuple[int, ...] = (200,)
    ) -> httpx.Response:
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                r = await self.client.request(method, path, json=body, headers={"X-CSRF-Token": self.csrf})
            except httpx.TransportError as e:
                last = repr(e)
            else:
                if r.status_code in expect:
                    return r
                if r.status_code not in (502, 503, 504):
                    raise AssertionError(f"{method} {path} {body}: {r.status_code} {r.text[:500]}")
                last = f"{r.status_code} {r.text[:200]}"
            self.retries += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: still failing after {RETRY_FOR_S}s: {last}")
            await asyncio.sleep(0.5)

    async def log_in(self, email_address: str, password: str = PASSWORD) -> dict[str, Any]:
        r = await self.call("POST", "/auth/login", {"email": email_address, "password": password})
        self.csrf = r.json()["csrf_token"]
        user: dict[str, Any] = r.json()["user"]
        return user

    async def close(self) -> None:
        await self.client.aclose()


@dataclass(frozen=True)
class InviteMail:
    message_id: str
    link: str


def invite_mails(mail_dir: Path) -> dict[str, list[InviteMail]]:
    """Every invite mail in the mail catcher's folder, by recipient."""
    found: dict[str, list[InviteMail]] = {}
    for path in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        for link in re.findall(r"https?://\S+/invite/[A-Za-z0-9_\-=%]+", text):
            found.setdefault(str(message["To"]), []).append(InviteMail(str(message["Message-ID"]), link))
    return found


@dataclass
class Chaos:
    """Kills a random replica of a random service every few seconds; nats-server and the postmaster
    once each, at a third and two thirds of the way."""

    run: Runner
    rng: random.Random
    kills: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        started = time.monotonic()
        servers = [(seconds / 3, "nats"), (2 * seconds / 3, "postgres")]
        while (elapsed := time.monotonic() - started) < seconds:
            if servers and elapsed >= servers[0][0]:
                self.kill_server(servers.pop(0)[1])
            else:
                service = self.rng.choice(SERVICES)
                replicas = sorted(self.run.children(service), key=lambda p: p.pid)
                if replicas:
                    victim = self.rng.choice(replicas)
                    with contextlib.suppress(psutil.NoSuchProcess):
                        victim.send_signal(signal.SIGKILL)
                        self.kills[service] += 1
                        self.log.append(f"{elapsed:5.1f}s {service} pid {victim.pid}")
            await asyncio.sleep(self.rng.uniform(*KILL_EVERY_S))

    def kill_server(self, name: str) -> None:
        """nats-server, or PostgreSQL's postmaster (its backends follow it)."""
        for p in self.run.descendants():
            with contextlib.suppress(psutil.NoSuchProcess):
                if name == "nats" and p.name() == "nats-server" or name == "postgres" and _is_postmaster(p):
                    p.send_signal(signal.SIGKILL)
                    self.kills[name] += 1
                    self.log.append(f"{name} pid {p.pid}")
                    return
        raise AssertionError(f"no {name} process to kill")


def _is_postmaster(p: psutil.Process) -> bool:
    return p.name() == "postgres" and "-D" in p.cmdline()


# By node and GPU: both agents replay the same recorded nvidia-smi, so the UUIDs repeat across nodes.
SQL_HELD_TWICE = """SELECT g.node_id, g.gpu_uuid, array_agg(a.id::text) AS holders
                    FROM scheduler.assignment_gpus g JOIN scheduler.assignments a ON a.id = g.assignment_id
                    WHERE a.status = 'active' GROUP BY g.node_id, g.gpu_uuid HAVING count(*) > 1"""


@dataclass
class Watcher:
    """Samples, every half second through the chaos, who holds each GPU: in the scheduler's database
    (when it is up) and in each agent's saved desired state (what the node enforces)."""

    run: Runner
    agents: list[Agents]
    twice: list[str] = field(default_factory=list)
    db_samples: int = 0
    agent_samples: int = 0

    async def watch(self) -> None:
        while True:
            try:
                pg = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.run.pg_port}/gpulab", timeout=2)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            try:
                while True:
                    await self.sample(pg)
                    await asyncio.sleep(0.5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass  # the postmaster was killed: connect again once it is back
            finally:
                with contextlib.suppress(Exception):
                    await pg.close()

    async def sample(self, pg: asyncpg.Connection) -> None:
        for row in await pg.fetch(SQL_HELD_TWICE):
            self.twice.append(f"database: node {row['node_id']} GPU {row['gpu_uuid']} held by {row['holders']}")
        self.db_samples += 1
        for i, agent in enumerate(self.agents):
            seen: Counter[str] = Counter()
            for a in assignments_in(agent.desired()).values():
                for gpu in a.get("gpus", []):
                    seen[json.dumps(gpu, sort_keys=True)] += 1
            self.twice += [f"agent {i}: GPU {gpu} in two assignments" for gpu, n in seen.items() if n > 1]
            self.agent_samples += 1


@dataclass
class World:
    """What the test did and what the API told it, for the checks at the end."""

    invited: list[str] = field(default_factory=list)
    requests: set[str] = field(default_factory=set)  # ids the API answered 201 for
    assignments: set[str] = field(default_factory=set)
    expiring: set[str] = field(default_factory=set)  # left alone by revokes and releases: they must expire
    flows: Counter[str] = field(default_factory=Counter)
