"""The chaos test (issue 14): the local run with 2 replicas of every service, driven through the REST
API and two real agent processes, while a replica of a random service is killed (SIGKILL) every few
seconds, and nats-server and PostgreSQL's postmaster once each. The local run starts whatever dies
again (docs/adr/0022); the test then checks what must hold whatever was killed when:

- every invite mailed exactly once;
- the audit log's chain valid, and one audit row for each invite, request and assignment made and
  for each assignment ended;
- no GPU held by two assignments at any moment (over every assignment's interval);
- every event delivered and acknowledged by every consumer, no outbox row left or dead-lettered;
- each agent's saved desired state equal to the scheduler's active assignments on its node, and
  every active assignment reported by its agent;
- no request lost (each one the API accepted exists) or granted twice (one assignment per granted
  request, and none for a request that is not granted).

Seeded: GPULAB_CHAOS_SEED replays a run (the seed is printed at the start and in the summary);
unset, each run draws a fresh one. `make chaos SEEDS=3` runs three seeds in a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import functools
import json
import os
import random
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import psutil
import pytest

from gpulab_devstack.servers import EmbeddedNats

from .agent_support import RECORDING, Agents, assignments_in
from .test_devrun import Runner
from .web_support import user_key

pytestmark = pytest.mark.slow

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


class Mission:
    def __init__(self, run: Runner, data: Path, rng: random.Random, tmp: Path) -> None:
        self.run = run
        self.data = data
        self.rng = rng
        self.tmp = tmp
        self.base = f"http://127.0.0.1:{run.http_port}"
        self.admin = Api(self.base)
        self.users: dict[str, tuple[str, Api]] = {}  # email -> (user id, signed-in Api)
        self.world = World()
        self.env_id = ""
        self.nodes: list[str] = []

    async def invite_and_join(self, n: int) -> None:
        """Invite n users, follow each mail's link, accept, sign in, add an SSH key."""
        emails = [f"chaos-{uuid.uuid4().hex[:8]}@lab.example" for _ in range(n)]
        for address in emails:
            # A retried invite after a lost reply finds the email taken: the first one went through.
            await self.admin.call("POST", "/users/invites", {"email": address, "role": "user"}, expect=(201, 409))
            self.world.invited.append(address)
            self.world.flows["invite"] += 1
        for address in emails:
            link = await self._invite_link(address)
            token = link.rsplit("/", 1)[1]
            api = Api(self.base)
            # 410 invite_used: an earlier try was accepted and its reply lost.
            await api.call(
                "POST", f"/auth/invites/{token}/accept", {"name": "Chaos", "password": PASSWORD}, expect=(201, 410)
            )
            user = await api.log_in(address)
            key, _ = user_key(self.tmp, f"id-{user['id']}", address)
            await api.call("POST", "/me/ssh-keys", {"public_key": key}, expect=(201, 409))
            self.users[address] = (user["id"], api)
            self.world.flows["accept, sign in, key"] += 1

    async def _invite_link(self, address: str) -> str:
        deadline = time.monotonic() + RETRY_FOR_S
        while time.monotonic() < deadline:
            mails = invite_mails(self.data / "mail").get(address)
            if mails:
                return mails[0].link
            await asyncio.sleep(0.3)
        raise AssertionError(f"no invite mail to {address} within {RETRY_FOR_S}s")

    async def add_nodes(self, agents: list[Agents], enroll_port: int) -> None:
        for i, agent in enumerate(agents):
            r = await self.admin.call(
                "POST",
                "/nodes",
                {"hostname": f"chaos-gpu-{i}", "type": "linux", "management_ip": f"10.9.0.{i + 1}"},
                expect=(201,),
            )
            node, enrollment = r.json()["node"], r.json()["enrollment"]
            enrolled = await agent.enroll(f"127.0.0.1:{enroll_port}", enrollment["ca_fingerprint"], enrollment["token"])
            assert enrolled.returncode == 0, enrolled.stderr
            agent.run()
            self.nodes.append(node["id"])
        for node_id in self.nodes:
            await self._until(functools.partial(self._node_online, node_id), "node online")
        r = await self.admin.call(
            "POST",
            "/environments",
            {
                "name": "chaos",
                "enforcement_mode": "soft",
                "tunnel_provider": "ssh_proxy_jump",
                "default_cpus": 1,
                "default_ram_mb": 1024,
                "self_service": "auto",
                "max_hours": 4,
            },
            expect=(201,),
        )
        self.env_id = r.json()["id"]
        for node_id in self.nodes:
            await self.admin.call("POST", f"/environments/{self.env_id}/nodes", {"node_id": node_id}, expect=(204,))
        self.world.flows["node enrolled"] += len(self.nodes)

    async def _node_online(self, node_id: str) -> bool:
        r = await self.admin.call("GET", f"/nodes/{node_id}")
        return bool(r.json()["status"] == "online")

    async def _until(self, check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = SETTLE_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout_s}s")
            await asyncio.sleep(0.5)

    async def expiring(self, n: int) -> None:
        """n assignments that end on their own a few seconds into the chaos (nobody revokes them)."""
        for _ in range(n):
            user_id = self.users[self.rng.choice(sorted(self.users))][0]
            ends = datetime.now(UTC) + timedelta(seconds=self.rng.uniform(8, 15))
            body = {"user_id": user_id, "environment_id": self.env_id, "gpus": 1, "placement": "dynamic"}
            r = await self.admin.call("POST", "/assignments", {**body, "expires_at": ends.isoformat()}, expect=(201,))
            self.world.expiring.add(r.json()["id"])
            self.world.assignments.add(r.json()["id"])

    async def step(self) -> None:
        """One random step of the mission, as a user or an admin would take it."""
        address = self.rng.choice(sorted(self.users))
        user_id, api = self.users[address]
        roll = self.rng.random()
        if roll < 0.35:
            wanted = {"environment_id": self.env_id, "gpus": self.rng.randint(1, 3), "hours": 1}
            r = await api.call("POST", "/me/requests", wanted, expect=(201, 409))
            if r.status_code == 201:
                self.world.requests.add(r.json()["id"])
                self.world.flows[f"request {r.json()['status']}"] += 1
            else:
                assert r.json()["code"] == "quota_exceeded", r.text
                self.world.flows["request over quota"] += 1
        elif roll < 0.55:
            placement = self.rng.choice(["dynamic", "fixed"])
            body: dict[str, Any] = {
                "user_id": user_id,
                "environment_id": self.env_id,
                "gpus": 1,
                "placement": placement,
            }
            if placement == "fixed":
                body["node_id"] = self.rng.choice(self.nodes)
            if self.rng.random() < 0.5:  # some end on their own, during the run
                body["expires_at"] = (datetime.now(UTC) + timedelta(seconds=self.rng.uniform(5, 20))).isoformat()
            r = await self.admin.call("POST", "/assignments", body, expect=(201, 409))
            if r.status_code == 201:
                self.world.assignments.add(r.json()["id"])
                self.world.flows[f"assignment {placement}"] += 1
            else:
                self.world.flows["assignment: no capacity"] += 1
        elif roll < 0.75:
            mine = (await api.call("GET", "/me/assignments")).json()["items"]
            active = [a for a in mine if a["status"] == "active" and a["id"] not in self.world.expiring]
            if active:
                chosen = self.rng.choice(active)
                await api.call("POST", f"/me/assignments/{chosen['id']}/release", expect=(200, 409))
                self.world.flows["release"] += 1
        elif roll < 0.9:
            listed = (await self.admin.call("GET", f"/assignments?environment_id={self.env_id}&status=active")).json()[
                "items"
            ]
            listed = [a for a in listed if a["id"] not in self.world.expiring]
            if listed:
                chosen = self.rng.choice(listed)
                await self.admin.call("POST", f"/assignments/{chosen['id']}/revoke", expect=(200, 409))
                self.world.flows["revoke"] += 1
        else:
            mine = (await api.call("GET", "/me/requests")).json()["items"]
            queued = [q for q in mine if q["status"] == "queued"]
            if queued:
                await api.call("POST", f"/me/requests/{self.rng.choice(queued)['id']}/cancel", expect=(200, 409))
                self.world.flows["cancel"] += 1


# Typically 1-2 min on 2 cores: ~40 s to start 12 processes and enroll, 40 s of chaos, the checks.
@pytest.mark.timeout(600)
async def test_the_mission_survives_replicas_killed_at_random(
    agent_binary: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = seed()

    def say(text: str) -> None:
        with capsys.disabled():  # shown in every run's output, not only when the test fails
            print(f"\nchaos: {text}")  # noqa: T201

    say(f"seed {chosen} (GPULAB_CHAOS_SEED={chosen} replays it)")
    rng = random.Random(chosen)
    data = tmp_path / "data"
    run = Runner(
        data,
        GPULAB_DEV_REPLICAS=str(REPLICAS),
        GPULAB_HEARTBEAT_INTERVAL_S="1",
        GPULAB_EXPIRY_SWEEP_S="1",
        GPULAB_BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        GPULAB_BOOTSTRAP_ADMIN_PASSWORD=PASSWORD,
        GPULAB_SSH_JUMP_HOST="jump.lab.example",
    )
    agents = [Agents(agent_binary, tmp_path / f"agent-{i}", RECORDING) for i in range(2)]
    mission = Mission(run, data, rng, tmp_path)
    chaos = Chaos(run, rng)
    try:
        await asyncio.to_thread(run.wait_for, "gpulab is up", 180)
        await mission.admin.log_in(ADMIN_EMAIL)
        await mission.invite_and_join(3)
        await mission.add_nodes(agents, run.enroll_port)
        for address in mission.users:  # quotas: 16 GPUs for 3 users of 6 each: some requests queue
            user_id = mission.users[address][0]
            await mission.admin.call("PUT", f"/quotas/users/{user_id}", {"max_gpus": 6})

        await mission.expiring(2)
        watcher = Watcher(run, agents)
        watching = asyncio.create_task(watcher.watch())
        killer = asyncio.create_task(chaos(CHAOS_S))
        joined = asyncio.create_task(mission.invite_and_join(2))  # invites mailed while replicas die
        while not killer.done():
            await mission.step()
        await killer
        await joined

        watching.cancel()
        checked = await settle_and_check(run, mission, agents, watcher)
        say(
            f"summary: seed {chosen}; kills {dict(sorted(chaos.kills.items()))}; "
            f"flows {dict(sorted(mission.world.flows.items()))}; retried calls "
            f"{mission.admin.retries + sum(api.retries for _, api in mission.users.values())}; "
            f"invariants checked: {', '.join(checked)}"
        )
        assert chaos.kills["nats"] == 1
        assert chaos.kills["postgres"] == 1
        assert sum(chaos.kills[s] for s in SERVICES) >= CHAOS_S / KILL_EVERY_S[1] - 2
    except BaseException:
        print("chaos: seed", chosen, "kills:\n  " + "\n  ".join(chaos.log))  # noqa: T201
        print("\n".join(run.lines[-200:]))  # noqa: T201
        raise
    finally:
        await mission.admin.close()
        for _, api in mission.users.values():
            await api.close()
        for agent in agents:
            agent.close()
        run.close()


async def settle_and_check(run: Runner, mission: Mission, agents: list[Agents], watcher: Watcher) -> list[str]:
    """Waits for everything to come back and converge, then checks every invariant; their names."""
    checked: list[str] = []
    deadline = time.monotonic() + SETTLE_S
    while any(len(run.children(s)) != REPLICAS for s in SERVICES):
        assert time.monotonic() < deadline, "killed replicas did not all come back"
        await asyncio.sleep(0.5)
    await mission.admin.call("GET", "/healthz")
    pg = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{run.pg_port}/gpulab")
    nc = await nats.connect(EmbeddedNats(mission.data / "nats", run.nats_port).url)
    try:
        # The system converges: no outbox row left, every consumer caught up, the queue served.
        async def quiet() -> bool:
            left = 0
            for schema in ("identity", "pki", "inventory", "scheduler", "notify"):
                left += await pg.fetchval(f"SELECT count(*) FROM {schema}.outbox")  # noqa: S608 (fixed names)
            if left:
                return False
            js = nc.jetstream()
            for info in await js.consumers_info("GPULAB_EVENTS"):
                if info.num_pending or info.num_ack_pending:
                    return False
            return True

        await mission._until(quiet, "outboxes empty and every consumer caught up")
        for schema in ("identity", "pki", "inventory", "scheduler", "notify"):
            dead = await pg.fetchval(f"SELECT count(*) FROM {schema}.outbox_dead_letters")  # noqa: S608
            assert dead == 0, f"{schema}: {dead} events dead-lettered"
        checked.append("every event relayed and delivered")

        # Invites: each mailed exactly once. notify's one window SMTP cannot close (the server kept the
        # mail, notify died before the 250) sends an identical copy, same Message-ID, which mail
        # clients show once (docs/architecture.md, "notify"): one invite each, by Message-ID.
        mails = invite_mails(mission.data / "mail")
        distinct = {address: {m.message_id for m in mails.get(address, [])} for address in mission.world.invited}
        assert {a: len(ids) for a, ids in distinct.items()} == dict.fromkeys(mission.world.invited, 1), distinct
        copies = sum(len(mails[a]) for a in mission.world.invited) - len(mission.world.invited)
        checked.append(f"every invite mailed exactly once ({copies} identical copies)")

        # No request lost or granted twice.
        rows = await pg.fetch("SELECT id::text, status, assignment_id::text FROM scheduler.requests WHERE kind = 'new'")
        requests = {r["id"]: r for r in rows}
        assert mission.world.requests <= set(requests), "a request the API accepted is missing"
        per_request = Counter(
            r["request_id"]
            for r in await pg.fetch("SELECT request_id::text FROM scheduler.assignments WHERE request_id IS NOT NULL")
        )
        for rid, r in requests.items():
            want = 1 if r["status"] == "granted" else 0
            assert per_request.get(rid, 0) == want, (
                f"request {rid} ({r['status']}) has {per_request.get(rid, 0)} assignments"
            )
        checked.append("no request lost or granted twice")

        # No GPU held twice: the watcher's samples during the chaos, and now.
        await watcher.sample(pg)
        assert watcher.twice == [], watcher.twice
        assert watcher.db_samples >= 3, "the database was never sampled"
        checked.append(f"no GPU held twice ({watcher.db_samples} database and {watcher.agent_samples} agent samples)")

        # Audit: the chain is valid, one row per invite, request and assignment, one per ending.
        verified = (await mission.admin.call("GET", "/audit-log/verify")).json()
        while verified["valid"] is None:
            verified = (await mission.admin.call("GET", f"/audit-log/verify?cursor={verified['next_cursor']}")).json()
        assert verified["valid"] is True, verified
        audit = Counter(
            (r["action"], r["target_id"]) for r in await pg.fetch("SELECT action, target_id FROM identity.audit_log")
        )
        assignments = await pg.fetch("SELECT id::text, status FROM scheduler.assignments")
        for a in assignments:
            assert audit[("assignment.created", a["id"])] == 1, (
                f"assignment {a['id']}: created audited {audit[('assignment.created', a['id'])]}x"
            )
            ended = sum(
                audit[(action, a["id"])] for action in ("assignment.revoked", "assignment.expired", "assignment.ended")
            )
            assert ended == (0 if a["status"] == "active" else 1), (
                f"assignment {a['id']} ({a['status']}): ended audited {ended}x"
            )
        for rid in requests:
            assert audit[("request.submitted", rid)] == 1, (
                f"request {rid}: submitted audited {audit[('request.submitted', rid)]}x"
            )
        assert mission.world.assignments <= {a["id"] for a in assignments}
        by_status = Counter(str(a["status"]) for a in assignments)
        mission.world.flows.update({f"assignments {status}": n for status, n in by_status.items()})
        expired = {a["id"] for a in assignments if a["status"] == "expired"}
        assert mission.world.expiring <= expired, f"not expired: {mission.world.expiring - expired}"
        checked.append(f"audit chain valid ({verified['checked']} rows), every row present once")

        # The agents apply what the scheduler says.
        async def agents_agree() -> bool:
            active = await pg.fetch(
                "SELECT id::text, node_id::text, node_state FROM scheduler.assignments WHERE status = 'active'"
            )
            for node_id, agent in zip(mission.nodes, agents, strict=True):
                want = {a["id"] for a in active if a["node_id"] == node_id}
                have = set(assignments_in(agent.desired()))
                if want != have:
                    return False
            return all(a["node_state"] != "pending" for a in active)

        await mission._until(agents_agree, "each agent's desired state equal to the scheduler's, all reported")
        checked.append("agents' state equal to the scheduler's")
    finally:
        await pg.close()
        await nc.close()
    return checked
