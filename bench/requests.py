"""Issue 13's self-service path: `POST /api/v1/me/requests` in an `auto` Environment (quotas set, so
that every request is checked against them) until every GPU is held, against the bare row-lock
allocator of bench/assign.py on the same PostgreSQL in the same run; one request at a time beside
the admin's `POST /api/v1/assignments`; and the queue: Q requests queued over N nodes, R assignments
revoked at once, how long until the next R requests are granted and whether they were the first R.

The stack is bench/assign.py's (bench/assign_running.py): identity, scheduler and gateway as service
processes, N nodes of 8 GPUs, U users (each signed in with a session of their own here).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import asyncpg
import httpx

from bench.assign import FULL, OK, Call, Fill, bare_fill, fill, one_at_a_time, outcome_of, rest_call, revoke_all
from bench.assign_running import CALL_TIMEOUT_S, Running, running
from bench.assign_stack import GPUS_PER_NODE, PASSWORD, add_environment, check_held
from bench.heartbeat import machine
from gpulab_core.rpc import RpcClient

API = "/api/v1"
QUEUED_IN = """SELECT id::text, status FROM scheduler.requests
               WHERE environment_id = $1 AND kind = 'new' AND created_at >= $2 ORDER BY seq"""
ACTIVE = "SELECT id FROM scheduler.assignments WHERE status = 'active' LIMIT $1"
WAITING = "SELECT id::text, user_id::text FROM scheduler.requests WHERE status = 'queued'"


@dataclass
class Person:
    user_id: str
    client: httpx.AsyncClient
    csrf: str


@asynccontextmanager
async def signed_in(base_url: str, users: list[tuple[str, str]]) -> AsyncIterator[list[Person]]:
    async with AsyncExitStack() as stack:
        people = []
        for user_id, email in users:
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=CALL_TIMEOUT_S))
            login = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
            login.raise_for_status()
            people.append(Person(user_id, client, login.json()["csrf_token"]))
        yield people


def request_call(people: list[Person], env_id: str) -> Call:
    """One GPU for one hour, by user i % U: OK when granted, FULL when it had to queue."""

    async def call(i: int, _worker: int) -> str:
        me = people[i % len(people)]
        body = {"environment_id": env_id, "gpus": 1, "hours": 1}
        r = await me.client.post(f"{API}/me/requests", json=body, headers={"X-CSRF-Token": me.csrf})
        if r.status_code == 201:
            return OK if r.json()["status"] == "granted" else FULL
        problem = r.json() if r.headers.get("content-type", "").endswith("json") else {}
        return outcome_of(str(problem.get("code", r.status_code)), str(problem.get("detail", "")))

    return call


async def cancel_waiting(rpc: RpcClient, pg_url: str) -> int:
    conn = await asyncpg.connect(pg_url)
    try:
        waiting = await conn.fetch(WAITING)
    finally:
        await conn.close()
    await asyncio.gather(
        *(rpc.call("scheduler", "requests.cancel", {"id": r["id"], "user_id": r["user_id"]}) for r in waiting)
    )
    return len(waiting)


@dataclass
class Drain:
    queued: int
    revoked: int
    seconds: float  # from the revokes' replies until the R-th grant was committed
    in_order: bool


async def drain(stack: Running, call: Call, env_id: str, queued: int, revoke: int, concurrency: int) -> Drain:
    """With every GPU held: queue `queued` requests, revoke `revoke` assignments at once, time the grants."""
    conn = await asyncpg.connect(stack.pg_url)
    try:
        since = await conn.fetchval("SELECT now()")
        slots = asyncio.Semaphore(concurrency)

        async def submit(i: int) -> None:
            async with slots:
                outcome = await call(i, 0)
            if outcome != FULL:
                raise RuntimeError(f"expected a queued request, got {outcome}")

        await asyncio.gather(*(submit(i) for i in range(queued)))
        ids = [
            str(r[0])
            for r in await conn.fetch("SELECT id FROM scheduler.assignments WHERE status = 'active' LIMIT $1", revoke)
        ]
        await asyncio.gather(*(stack.rpc.call("scheduler", "assignments.revoke", {"id": i}) for i in ids))
        started = time.perf_counter()
        while True:
            rows = await conn.fetch(QUEUED_IN, env_id, since)
            granted = [r["id"] for r in rows if r["status"] == "granted"]
            if len(granted) >= revoke or time.perf_counter() - started > 30:
                break
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
        in_order = granted == [r["id"] for r in rows[:revoke]]
        return Drain(len(rows), len(ids), seconds, in_order and len(granted) == revoke)
    finally:
        await conn.close()


def report(nodes: int, c: int, rows: dict[str, Fill], steps: dict[str, float], n1: int, queue: Drain) -> Iterator[str]:
    gpus = nodes * GPUS_PER_NODE
    yield (
        f"Self-service 1-GPU requests (auto, quotas set) until {nodes} nodes x {GPUS_PER_NODE} GPUs = {gpus}"
        f" are held, C={c}"
    )
    yield "| path | granted | per s | p50 ms | p99 ms | s |"
    yield "|---|---|---|---|---|---|"
    for name, f in rows.items():
        yield f"| {name} | {len(f.latencies)} | {f.rate:,.1f} | {f.ms(0.5):.1f} | {f.ms(0.99):.1f} | {f.wall_s:.1f} |"
    ss, bare = rows["self-service REST"], rows["bare"]
    yield ""
    yield f"self-service/bare rate: {ss.rate / bare.rate:.3f}"
    yield ""
    per = {k: v / len(ss.latencies) * 1000 for k, v in ss.cpu.items()}
    yield "CPU ms per self-service request: " + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
    yield ""
    yield f"One request at a time (p50 ms of {n1} each, interleaved)"
    yield "| step | p50 ms |"
    yield "|---|---|"
    for name, ms in steps.items():
        yield f"| {name} | {ms:.1f} |"
    yield ""
    yield (
        f"Queue: {queue.queued} requests queued over {nodes} nodes, {queue.revoked} assignments revoked at once:"
        f" the next {queue.revoked} granted in {queue.seconds:.2f} s, in submission order: {queue.in_order}"
    )


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench requests")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--one-at-a-time", type=int, default=30)
    parser.add_argument("--queued", type=int, default=1000)
    parser.add_argument("--revoke", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="10 nodes, 5 users, 100 queued, 10 revoked")
    args, _ = parser.parse_known_args(argv)
    if args.quick:
        args.nodes, args.users, args.one_at_a_time, args.queued, args.revoke = 10, 5, 10, 100, 10
    c: int = args.concurrency
    gpus = args.nodes * GPUS_PER_NODE
    args.one_at_a_time = min(args.one_at_a_time, gpus // 3)

    def say(text: str) -> None:
        print(text, file=sys.stderr)  # noqa: T201

    say(machine())
    async with running(args.nodes, args.users, say) as stack:
        rpc = stack.rpc
        env_id = await add_environment(rpc, "bench-requests", stack.nodes, self_service="auto")
        boss = stack.users[0][0]
        for user_id, _ in stack.users:  # a quota each, so that every request is checked against one
            body = {"subject_type": "user", "subject_id": user_id, "actor_id": boss, "max_gpus": gpus * 2}
            await rpc.call("scheduler", "quotas.set", body)
        async with signed_in(f"http://127.0.0.1:{stack.http_port}", stack.users) as people:
            requests = request_call(people, env_id)
            admin_rest = rest_call(people[0].client, people[0].csrf, env_id, stack.users)
            steps = await one_at_a_time(
                {"REST POST /api/v1/me/requests (auto)": requests, "REST POST /api/v1/assignments": admin_rest},
                args.one_at_a_time,
            )
            await revoke_all(rpc, stack.pg_url, c)
            rows = {"self-service REST": await fill(requests, c, stack.cpu)}
            say(f"self-service: {await check_held(stack.pg_url, len(rows['self-service REST'].latencies), gpus)}")
            say(f"{await cancel_waiting(rpc, stack.pg_url)} requests that queued at the end cancelled")
            queue = await drain(stack, requests, env_id, args.queued, args.revoke, c)
            await cancel_waiting(rpc, stack.pg_url)
            await revoke_all(rpc, stack.pg_url, c)
        rows["bare"], held = await bare_fill(stack.pg_url, gpus, c, stack.cpu)
        say(f"bare: {held}")
        print("\n".join(report(args.nodes, c, rows, steps, args.one_at_a_time, queue)))  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
