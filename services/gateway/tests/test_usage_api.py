"""`GET /usage` and `GET /me/usage` with identity and the scheduler running for real: hand-made
assignment intervals in the scheduler's tables, the GPU-hours checked against the plain-Python
computation of gpulab_devstack.usage_reference, JSON against CSV, group_by=group through identity's
real groups."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.db import create_engine
from gpulab_core.rpc import RpcClient
from gpulab_core.runtime import Runtime
from gpulab_devstack.testing import Stack
from gpulab_devstack.usage_reference import Interval, expected, insert
from gpulab_scheduler import main as scheduler_main
from gpulab_scheduler.config import Settings as SchedulerSettings

from .conftest import Browser, UserFactory

H = timedelta(hours=1)
pytestmark = pytest.mark.usefixtures("scheduler")  # it serves every test here
_windows_taken: set[int] = set()


def fresh_window(*, before_the_running: bool = False) -> datetime:
    """A day of its own for each scene, so that no two tests of a run see each other's intervals. The
    scenes hold assignments still running, which overlap every later range: a test that groups over
    everyone's rows (group_by=group) takes its day from the first era, before every scene's."""
    era = 0 if before_the_running else 10_000
    while (day := era + uuid.uuid4().int % 10_000) in _windows_taken:
        continue
    _windows_taken.add(day)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)


KEYS = {"user": lambda i: i.user_id, "environment": lambda i: i.environment_id, "node": lambda i: i.node_id}


@pytest.fixture(scope="module")
async def scheduler(migrated: Stack, identity: Runtime) -> AsyncIterator[Runtime]:  # noqa: ARG001 (identity runs)
    url = migrated.service_database_url("scheduler")
    runtime = Runtime(scheduler_main.spec, SchedulerSettings(database_url=url, nats_url=migrated.nats_url))
    await runtime.start()
    yield runtime
    await runtime.stop()


@pytest.fixture(scope="module")
async def engine(migrated: Stack) -> AsyncIterator[AsyncEngine]:
    made = create_engine(migrated.database_url, schema=None, app_name="gateway-usage-tests")
    yield made
    await made.dispose()


async def hosts_and_environments(engine: AsyncEngine) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Two nodes and two Environments as the scheduler keeps them (named, as a report names them)."""
    nodes, envs = [uuid.uuid4(), uuid.uuid4()], [uuid.uuid4(), uuid.uuid4()]
    async with engine.begin() as conn:
        for node in nodes:
            await conn.execute(
                text("INSERT INTO scheduler.nodes (id, hostname, status, status_at) VALUES (:id, :h, 'online', now())"),
                {"id": node, "h": f"host-{node.hex[:8]}"},
            )
        for env in envs:
            await conn.execute(
                text(
                    "INSERT INTO scheduler.environments (id, name, enforcement_mode, tunnel_provider, default_cpus,"
                    " default_ram_mb) VALUES (:id, :name, 'soft', 'ssh_proxy_jump', 1, 1024)"
                ),
                {"id": env, "name": f"+env-{env.hex[:8]}"},  # a formula-looking name, for the CSV
            )
    return nodes, envs


async def world(engine: AsyncEngine, me: Browser) -> tuple[datetime, list[Interval]]:
    base = fresh_window()
    nodes, envs = await hosts_and_environments(engine)
    mine = (uuid.UUID(me.user_id), me.user["email"])
    other = (uuid.uuid4(), '=HYPERLINK("http://x")@example.org')

    def iv(who: tuple[uuid.UUID, str], k: int, gpus: int, s: float, e: float | None) -> Interval:
        return Interval(who[0], who[1], envs[k], nodes[k], None, gpus, base + s * H, base + e * H if e else None)

    intervals = [
        iv(mine, 0, 2, -2, 1),
        iv(mine, 1, 1, 3, 4.5),
        iv(mine, 0, 1, 8, None),  # running
        iv(other, 0, 4, 2, 12),
        iv(other, 1, 1, -3, 0),  # ended at `from`
        iv(other, 1, 3, 5, 5),  # zero-length
    ]
    return base, await insert(engine, intervals)


def rows(items: list[dict[str, Any]]) -> dict[uuid.UUID | None, tuple[float, int]]:
    return {(uuid.UUID(i["key"]["id"]) if i["key"]["id"] else None): (i["gpu_hours"], i["assignments"]) for i in items}


def csv_rows(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body)))


@dataclass(frozen=True)
class Scene:
    me: Browser
    intervals: list[Interval]
    since: datetime
    until: datetime


@pytest.fixture
async def scene(engine: AsyncEngine, new_user: UserFactory) -> Scene:
    """A user of their own, the intervals of `world` and the range [base, base + 10h)."""
    me = await new_user()
    base, intervals = await world(engine, me)
    return Scene(me, intervals, base, base + 10 * H)


async def test_usage_per_group_by_as_json_and_csv(scene: Scene, admin: Browser) -> None:
    me, intervals, since, until = scene.me, scene.intervals, scene.since, scene.until
    params = {"from": since.isoformat(), "until": until.isoformat()}
    for group_by, key in KEYS.items():
        reply = await admin.get("/usage", params={**params, "group_by": group_by})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert datetime.fromisoformat(body["from"]) == since
        assert datetime.fromisoformat(body["until"]) == until
        want = expected(intervals, since, until, datetime.now(UTC), key)
        assert rows(body["items"]) == {k: (v.gpu_hours, v.assignments) for k, v in want.items()}, group_by
        order = [(-i["gpu_hours"], i["key"]["name"]) for i in body["items"]]
        assert order == sorted(order)
        as_csv = await admin.get("/usage", params={**params, "group_by": group_by}, headers={"Accept": "text/csv"})
        assert as_csv.status_code == 200
        assert as_csv.headers["content-type"].startswith("text/csv")
        stamp = f"{since:%Y%m%dT%H%M%SZ}-{until:%Y%m%dT%H%M%SZ}"
        assert as_csv.headers["content-disposition"] == f'attachment; filename="gpulab-usage-{stamp}.csv"'
        assert as_csv.text.splitlines()[0] == "key_id,key_name,gpu_hours,assignments"
        table = csv_rows(as_csv.text)
        assert [(r["key_id"], float(r["gpu_hours"]), int(r["assignments"])) for r in table] == [
            (i["key"]["id"], i["gpu_hours"], i["assignments"]) for i in body["items"]
        ]
        for line, item in zip(table, body["items"], strict=True):
            name = item["key"]["name"]
            assert line["key_name"] == ("'" + name if name[0] in "=+-@" else name)
    names = {i["key"]["name"] for i in (await admin.get("/usage", params=params)).json()["items"]}
    assert names == {me.user["email"], '=HYPERLINK("http://x")@example.org'}


async def test_my_usage_is_mine_only(scene: Scene) -> None:
    me, intervals, since, until = scene.me, scene.intervals, scene.since, scene.until
    mine = [i for i in intervals if i.user_id == uuid.UUID(me.user_id)]
    for group_by, key in KEYS.items():
        params = {"from": since.isoformat(), "until": until.isoformat(), "group_by": group_by}
        reply = await me.get("/me/usage", params=params)
        assert reply.status_code == 200, reply.text
        want = expected(mine, since, until, datetime.now(UTC), key)
        assert rows(reply.json()["items"]) == {k: (v.gpu_hours, v.assignments) for k, v in want.items()}
    assert (await me.get("/usage", params={"from": since.isoformat(), "until": until.isoformat()})).status_code == 403


async def test_the_default_range_is_this_month_until_now(
    new_user: UserFactory,
) -> None:
    me = await new_user()
    before = datetime.now(UTC)
    body = (await me.get("/me/usage")).json()
    after = datetime.now(UTC)
    until = datetime.fromisoformat(body["until"])
    assert before <= until <= after
    assert datetime.fromisoformat(body["from"]) == before.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert body["items"] == []


@pytest.mark.parametrize("path", ["/usage", "/me/usage"])
@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"from": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"from": "2024-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"from": "2026-01-01T00:00:00", "until": "2026-01-02T00:00:00Z"},
        {"from": "the first", "until": "2026-01-02T00:00:00Z"},
        {"until": "2026-13-01T00:00:00Z"},
        {"group_by": "team"},
    ],
)
async def test_bad_inputs_are_422(
    admin: Browser,
    path: str,
    params: dict[str, str],
) -> None:
    reply = await admin.get(path, params=params)
    assert reply.status_code == 422, reply.text
    assert reply.json()["code"] == "invalid_request"
    assert reply.headers["content-type"] == "application/problem+json"


async def test_usage_by_group_names_the_groups(engine: AsyncEngine, nc: NATS, admin: Browser) -> None:
    """A real group (identity's groups.create) names its row."""
    made = await RpcClient(nc).call(
        "identity", "groups.create", {"actor_id": admin.user_id, "name": f"=lab-{uuid.uuid4().hex[:6]}"}
    )
    group = uuid.UUID(made["id"])
    nodes, envs = await hosts_and_environments(engine)
    base = fresh_window(before_the_running=True)
    user = uuid.uuid4()
    intervals = await insert(
        engine,
        [
            Interval(user, "g@example.org", envs[0], nodes[0], group, 2, base - H, base + 2 * H),
            Interval(user, "g@example.org", envs[1], nodes[1], None, 1, base, base + 3 * H),
        ],
    )
    since, until = base, base + 10 * H
    params = {"from": since.isoformat(), "until": until.isoformat(), "group_by": "group"}
    body = (await admin.get("/usage", params=params)).json()
    want = expected(intervals, since, until, datetime.now(UTC), lambda i: i.group_id)
    assert rows(body["items"]) == {k: (v.gpu_hours, v.assignments) for k, v in want.items()}
    assert [i["key"]["name"] for i in body["items"]] == [made["name"], "(no group)"]  # 4 h, then 3 h
    as_csv = csv_rows((await admin.get("/usage", params=params, headers={"Accept": "text/csv"})).text)
    assert [(r["key_id"], r["key_name"]) for r in as_csv] == [(str(group), "'" + made["name"]), ("", "(no group)")]
