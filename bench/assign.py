"""Issue 5's assignment path: dynamic assignments of one GPU each until an Environment is full,
through the real gateway, against a bare row-lock allocator on the same PostgreSQL, in one run.

gpulab: identity, scheduler and gateway (uvicorn) as service processes on an embedded PostgreSQL and
        NATS; N nodes of 8 GPUs reach the scheduler's projection as inventory's events; ~20 active
        users with an SSH key each. C concurrent `POST /api/v1/assignments` (an admin's session
        cookie and CSRF header) until every GPU is held and the requests get 409 `no_capacity`.
        Then the same fill once more straight to the scheduler over NATS (`assignments.create`, no
        gateway), and a few requests one at a time through each layer: where the time goes.
bare:   a table of N x 8 GPU rows; C asyncpg connections each looping
        BEGIN; SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1; UPDATE ... SET holder; COMMIT until none is left.

This process is the load generator (one asyncio loop). CPU time per part comes from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import asyncpg
import httpx

from bench.assign_running import CALL_TIMEOUT_S, running
from bench.assign_stack import GPUS_PER_NODE, PASSWORD, Cpu, active_ids, add_environment, check_held
from bench.heartbeat import machine
from bench.heartbeat_load import percentile
from gpulab_core.errors import RemoteError
from gpulab_core.rpc import RpcClient

API = "/api/v1"
MAX_ERRORS = 50  # other failures than the expected 409s: give up rather than report nonsense
FULL, BUSY, OK = "full", "busy", "ok"
SMALL = 10  # nodes in the second, small Environment
BUSY_DETAIL = "too busy"  # handlers.py: no_capacity after the placement retry budget

Outcome = str  # OK, FULL (no_capacity: not enough GPUs), BUSY (no_capacity: too busy), or "code: detail"


@dataclass
class Fill:
    """One run of C workers until the environment is full."""

    latencies: list[float] = field(default_factory=list)  # of the successful requests, seconds
    full_latencies: list[float] = field(default_factory=list)  # of the final 409s
    busy: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by code
    details: dict[str, str] = field(default_factory=dict)  # the first detail of each code
    wall_s: float = 0.0  # from the first request to the last success
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall_s

    def ms(self, q: float) -> float:
        return percentile(sorted(self.latencies), q) * 1000


Call = Callable[[int, int], Awaitable[Outcome]]  # (request number, worker number) -> outcome


async def fill(call: Call, concurrency: int, cpu: Callable[[], Cpu] | None = None) -> Fill:
    """C workers call back to back; a worker stops at its first FULL (the environment is full)."""
    result = Fill()
    numbers = itertools.count()
    started = time.perf_counter()
    last_ok = started
    before = cpu() if cpu else None

    async def worker(w: int) -> None:
        nonlocal last_ok
        while True:
            t = time.perf_counter()
            outcome = await call(next(numbers), w)
            done = time.perf_counter()
            if outcome == OK:
                result.latencies.append(done - t)
                last_ok = done
            elif outcome == FULL:
                result.full_latencies.append(done - t)
                return
            elif outcome == BUSY:
                result.busy += 1
            else:
                code, _, detail = outcome.partition(": ")
                result.errors[code] += 1
                result.details.setdefault(code, detail)
                if sum(result.errors.values()) > MAX_ERRORS:
                    raise RuntimeError(f"too many failed requests: {dict(result.errors)}")

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    if cpu and before:
        result.cpu = cpu().spent(before)
    result.wall_s = last_ok - started
    return result


# ---- gpulab: through the gateway, or straight to the scheduler ----
def outcome_of(code: str, detail: str) -> Outcome:
    if code == "no_capacity":
        return BUSY if BUSY_DETAIL in detail else FULL
    return f"{code}: {detail}"


def rest_call(client: httpx.AsyncClient, csrf: str, env_id: str, users: list[tuple[str, str]]) -> Call:
    async def call(i: int, _worker: int) -> Outcome:
        body = {"user_id": users[i % len(users)][0], "environment_id": env_id, "gpus": 1, "placement": "dynamic"}
        r = await client.post(f"{API}/assignments", json=body, headers={"X-CSRF-Token": csrf})
        if r.status_code == 201:
            return OK
        problem = r.json() if r.headers.get("content-type", "").endswith("json") else {}
        return outcome_of(str(problem.get("code", r.status_code)), str(problem.get("detail", "")))

    return call


def rpc_call(rpc: RpcClient, env_id: str, users: list[tuple[str, str]]) -> Call:
    async def call(i: int, _worker: int) -> Outcome:
        body = {"user_id": users[i % len(users)][0], "environment_id": env_id, "gpus": 1, "placement": "dynamic"}
        try:
            await rpc.call("scheduler", "assignments.create", body)
        except RemoteError as exc:
            return outcome_of(exc.code, exc.message)
        return OK

    return call


def identity_calls(rpc: RpcClient, users: list[tuple[str, str]]) -> Call:
    """What the scheduler asks identity for each assignment (identity_client.py), nothing else."""

    async def call(i: int, _worker: int) -> Outcome:
        user_id = users[i % len(users)][0]
        await rpc.call("identity", "users.get", {"id": user_id})
        await rpc.call("identity", "ssh_keys.authorized", {"user_id": user_id})
        return OK

    return call


async def revoke_all(rpc: RpcClient, pg_url: str, concurrency: int) -> None:
    ids = await active_ids(pg_url)
    slots = asyncio.Semaphore(concurrency)

    async def revoke(assignment_id: str) -> None:
        async with slots:
            await rpc.call("scheduler", "assignments.revoke", {"id": assignment_id})

    await asyncio.gather(*(revoke(i) for i in ids))


async def one_at_a_time(calls: dict[str, Call], n: int) -> dict[str, float]:
    """p50 ms of each call, one request in flight, the calls interleaved so that they share conditions."""
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(n):
        for name, call in calls.items():
            t = time.perf_counter()
            outcome = await call(i, 0)
            if outcome != OK:
                raise RuntimeError(f"{name}: {outcome}")
            latencies[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) * 1000 for name, v in latencies.items()}


# ---- bare: one row per GPU, SKIP LOCKED ----
BARE_SETUP = """DROP TABLE IF EXISTS bench_gpus;
CREATE TABLE bench_gpus (id int PRIMARY KEY, holder int);
INSERT INTO bench_gpus (id) SELECT generate_series(1, {gpus});"""
BARE_PICK = "SELECT id FROM bench_gpus WHERE holder IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
BARE_TAKE = "UPDATE bench_gpus SET holder = $1 WHERE id = $2"


async def bare_fill(pg_url: str, gpus: int, concurrency: int, cpu: Callable[[], Cpu]) -> tuple[Fill, str]:
    setup = await asyncpg.connect(pg_url)
    await setup.execute(BARE_SETUP.format(gpus=gpus))
    conns = [await asyncpg.connect(pg_url) for _ in range(concurrency)]
    try:
        taken = 0

        async def call(_i: int, worker: int) -> Outcome:
            """Each worker on its own connection, as C clients of a bare allocator would be."""
            nonlocal taken
            conn = conns[worker]
            async with conn.transaction():
                row = await conn.fetchrow(BARE_PICK)
                if row is None:
                    return FULL
                await conn.execute(BARE_TAKE, worker, row["id"])
            taken += 1
            return OK

        result = await fill(call, concurrency, cpu)
        held = await setup.fetchval("SELECT count(*) FROM bench_gpus WHERE holder IS NOT NULL")
        if not held == taken == gpus:
            raise AssertionError(f"bare: {taken} allocations committed, {held} rows held, {gpus} GPUs")
        await setup.execute("DROP TABLE bench_gpus")
        return result, f"{held} rows held by {taken} allocations"
    finally:
        for conn in [*conns, setup]:
            await conn.close()


# ---- the report ----
CPU_PARTS = (
    "gateway",
    "identity",
    "scheduler",
    "postgres",
    "nats",
    "load generator",
    "kernel irq, softirq",
    "other processes",
)


def report(nodes: int, concurrency: int, rows: dict[str, Fill], steps: dict[str, float], n1: int) -> Iterator[str]:
    gpus = nodes * GPUS_PER_NODE
    yield f"Dynamic 1-GPU assignments until {nodes} nodes x {GPUS_PER_NODE} GPUs = {gpus} are held, C={concurrency}"
    yield "| path | assigned | per s | p50 ms | p99 ms | final 409 no_capacity | 409 too busy | other errors | s |"
    yield "|---|---|---|---|---|---|---|---|---|"
    for name, f in rows.items():
        errors = ", ".join(f"{k}: {v}" for k, v in f.errors.items()) or "0"
        yield (
            f"| {name} | {len(f.latencies)} | {f.rate:,.1f} | {f.ms(0.5):.1f} | {f.ms(0.99):.1f}"
            f" | {len(f.full_latencies)} | {f.busy} | {errors} | {f.wall_s:.1f} |"
        )
    rest, bare = rows["gpulab REST"], rows["bare"]
    yield ""
    yield f"gpulab/bare rate: {rest.rate / bare.rate:.3f} (bare is {bare.rate / rest.rate:,.0f}x faster)"
    yield ""
    yield "CPU ms per assignment, by process, during each fill"
    yield "| path | " + " | ".join(CPU_PARTS) + " | total |"
    yield "|---|" + "---|" * (len(CPU_PARTS) + 1)
    for name, f in rows.items():
        per = {k: f.cpu.get(k, 0.0) / len(f.latencies) * 1000 for k in CPU_PARTS}
        yield f"| {name} | " + " | ".join(f"{v:.2f}" for v in per.values()) + f" | {sum(per.values()):.2f} |"
    yield ""
    yield f"One request at a time (p50 ms of {n1} each, interleaved)"
    yield "| step | p50 ms |"
    yield "|---|---|"
    for name, ms in steps.items():
        yield f"| {name} | {ms:.1f} |"


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench assign")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--one-at-a-time", type=int, default=30, help="requests per layer, one in flight")
    parser.add_argument("--quick", action="store_true", help="10 nodes, 5 users, 10 single requests: a smoke run")
    # `python -m bench -n 3000` hands every benchmark the same options: the others' are not ours.
    args, _ = parser.parse_known_args(argv)
    if args.quick:
        args.nodes, args.users, args.one_at_a_time = 10, 5, 10
    c: int = args.concurrency
    # Each layer's single requests hold GPUs until they are all revoked: they must fit.
    args.one_at_a_time = min(args.one_at_a_time, args.nodes * GPUS_PER_NODE // 3)
    gpus = args.nodes * GPUS_PER_NODE
    print(machine(), file=sys.stderr)  # noqa: T201

    def say(text: str) -> None:
        print(text, file=sys.stderr)  # noqa: T201

    async with running(args.nodes, args.users, say) as stack:
        rpc, users, nodes = stack.rpc, stack.users, stack.nodes
        env_id = await add_environment(rpc, "bench", nodes)
        # 10 of the same nodes in an Environment of their own: what placement costs per node. The
        # last 10: best fit fills the big Environment's nodes in host name order, from the first.
        small_id = await add_environment(rpc, "bench-10", nodes[-SMALL:]) if args.nodes > SMALL else None
        base_url = f"http://127.0.0.1:{stack.http_port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=CALL_TIMEOUT_S) as client:
            login = await client.post(f"{API}/auth/login", json={"email": users[0][1], "password": PASSWORD})
            login.raise_for_status()
            rest = rest_call(client, login.json()["csrf_token"], env_id, users)
            direct = rpc_call(rpc, env_id, users)
            layers = {
                f"REST POST /api/v1/assignments ({args.nodes} nodes)": rest,
                f"scheduler RPC assignments.create ({args.nodes} nodes)": direct,
                "identity RPCs alone (users.get + ssh_keys.authorized)": identity_calls(rpc, users),
            }
            if small_id is not None:
                layers[f"scheduler RPC assignments.create ({SMALL} nodes)"] = rpc_call(rpc, small_id, users)
            steps = await one_at_a_time(layers, args.one_at_a_time)
            await revoke_all(rpc, stack.pg_url, c)  # every fill starts from free nodes
            rows: dict[str, Fill] = {}
            for name, call in (("gpulab REST", rest), ("scheduler RPC (no gateway)", direct)):
                rows[name] = await fill(call, c, stack.cpu)
                for code, detail in rows[name].details.items():
                    say(f"{name}: {rows[name].errors[code]} x {code}, the first: {detail}")
                say(f"{name}: {await check_held(stack.pg_url, len(rows[name].latencies), gpus)}")
                await revoke_all(rpc, stack.pg_url, c)
        rows["bare"], held = await bare_fill(stack.pg_url, gpus, c, stack.cpu)
        say(f"bare: {held}")
        print("\n".join(report(args.nodes, c, rows, steps, args.one_at_a_time)))  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
