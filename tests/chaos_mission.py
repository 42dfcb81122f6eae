"""The chaos test's mission (test_chaos.py): what users and admins do through the REST API, and what
the API told them, for the checks at the end."""

from __future__ import annotations

import asyncio
import functools
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .agent_support import Agents
from .chaos_support import PASSWORD, RETRY_FOR_S, SETTLE_S, Api, World, invite_mails
from .test_devrun import Runner
from .web_support import user_key


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
