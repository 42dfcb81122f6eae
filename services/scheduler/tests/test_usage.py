"""GPU-hour accounting (docs/adr/0020): `usage.report` over hand-made assignment intervals, checked
against the plain-Python computation of gpulab_devstack.usage_reference, for every `group_by`."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gpulab_devstack.usage_reference import Interval, expected, insert

from .conftest import Cluster

H = timedelta(hours=1)


def a_past_day() -> datetime:
    """A range no other test's assignments touch (theirs start now)."""
    return datetime(1990, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(10_000))  # noqa: S311


def as_expected(items: list[dict[str, Any]]) -> dict[uuid.UUID | None, tuple[float, int]]:
    return {
        (uuid.UUID(i["key_id"]) if i["key_id"] else None): (round(i["gpu_seconds"] / 3600, 4), i["assignments"])
        for i in items
    }


async def world(cluster: Cluster, base: datetime) -> tuple[list[Interval], dict[str, Any]]:
    """Two users, two groups and none, two Environments (one deleted later), two nodes; every way an
    interval can meet the range [base, base + 10h)."""
    nodes = [await cluster.node(2, hostname=f"acct-{uuid.uuid4().hex[:8]}") for _ in range(2)]
    envs = [await cluster.environment(nodes=[n]) for n in nodes]
    ada, bob = (uuid.uuid4(), f"ada.{uuid.uuid4().hex[:6]}@example.org"), (uuid.uuid4(), "=bob@example.org")
    g1, g2 = uuid.uuid4(), uuid.uuid4()
    e1, e2 = uuid.UUID(envs[0]["id"]), uuid.UUID(envs[1]["id"])

    def iv(
        who: tuple[uuid.UUID, str], env: uuid.UUID, group: uuid.UUID | None, gpus: int, s: float, e: float | None
    ) -> Interval:
        node = nodes[0] if env == e1 else nodes[1]
        return Interval(who[0], who[1], env, node, group, gpus, base + s * H, base + e * H if e is not None else None)

    intervals = [
        iv(ada, e1, g1, 2, -2, 1),  # starts before the range
        iv(ada, e1, g1, 1, 9, 12),  # ends after it
        iv(ada, e1, None, 3, 2, 5),  # inside
        iv(bob, e1, g2, 1, -5, None),  # running now
        iv(bob, e2, g2, 2, -3, 0),  # ended exactly at `from`: not counted
        iv(bob, e2, None, 1, 10, 11),  # starts exactly at `until`: not counted
        iv(bob, e2, g1, 2, 4, 4),  # zero-length, inside: counted, 0 hours
        iv(ada, e2, g2, 4, -1, 20),  # covers the whole range
        iv(bob, e2, None, 1, 3.25, 3.5),  # a quarter of an hour
    ]
    made = await insert(cluster.engine, intervals)
    return made, {"nodes": nodes, "envs": envs}


KEYS = {
    "user": lambda i: i.user_id,
    "group": lambda i: i.group_id,
    "environment": lambda i: i.environment_id,
    "node": lambda i: i.node_id,
}


async def test_gpu_hours_per_group_by_match_an_independent_computation(cluster: Cluster) -> None:
    base = a_past_day()
    intervals, made = await world(cluster, base)
    # The second Environment is deleted (it has no running assignment): its rows keep its name.
    await cluster.call("environments.delete", {"id": made["envs"][1]["id"]})
    since, until = base, base + 10 * H
    for group_by, key in KEYS.items():
        report = await cluster.call(
            "usage.report", {"since": since.isoformat(), "until": until.isoformat(), "group_by": group_by}
        )
        want = expected(intervals, since, until, datetime.now(UTC), key)
        assert as_expected(report["items"]) == {k: (v.gpu_hours, v.assignments) for k, v in want.items()}, group_by
        assert datetime.fromisoformat(report["until"]) == until
        hours = [i["gpu_seconds"] for i in report["items"]]
        assert hours == sorted(hours, reverse=True)
    # The numbers themselves, once by hand: ada 2*1 + 1*1 + 3*3 + 4*10 = 52 h in 4; bob 1*10 + 0 + 0.25 = 10.25 h in 3.
    by_user = await cluster.call("usage.report", {"since": since.isoformat(), "until": until.isoformat()})
    assert sorted((round(i["gpu_seconds"] / 3600, 4), i["assignments"]) for i in by_user["items"]) == [
        (10.25, 3),
        (52.0, 4),
    ]
    names = {i["key_id"]: i["key_name"] for i in by_user["items"]}
    assert set(names.values()) == {intervals[0].user_email, "=bob@example.org"}
    by_env = await cluster.call(
        "usage.report", {"since": since.isoformat(), "until": until.isoformat(), "group_by": "environment"}
    )
    assert {i["key_name"] for i in by_env["items"]} == {made["envs"][0]["name"], made["envs"][1]["name"]}
    by_node = await cluster.call(
        "usage.report", {"since": since.isoformat(), "until": until.isoformat(), "group_by": "node"}
    )
    hostnames = {r["key_id"]: r["key_name"] for r in by_node["items"]}
    assert all(name.startswith("acct-") for name in hostnames.values())
    by_group = await cluster.call(
        "usage.report", {"since": since.isoformat(), "until": until.isoformat(), "group_by": "group"}
    )
    assert None in {i["key_id"] for i in by_group["items"]}, "the assignments of no group have a row"
    assert all(i["key_name"] is None for i in by_group["items"]), "identity names the groups"


async def test_one_user_only_and_a_range_that_cuts_every_interval(cluster: Cluster) -> None:
    base = a_past_day()
    intervals, _ = await world(cluster, base)
    ada = intervals[0].user_id
    since, until = base + 0.5 * H, base + 9.5 * H
    report = await cluster.call(
        "usage.report",
        {"since": since.isoformat(), "until": until.isoformat(), "group_by": "group", "user_id": str(ada)},
    )
    mine = [i for i in intervals if i.user_id == ada]
    want = expected(mine, since, until, datetime.now(UTC), KEYS["group"])
    assert as_expected(report["items"]) == {k: (v.gpu_hours, v.assignments) for k, v in want.items()}


async def test_running_assignments_count_up_to_now_and_nothing_ahead(cluster: Cluster) -> None:
    node = await cluster.node(2)
    env = await cluster.environment(nodes=[node])
    user = uuid.uuid4()
    started = datetime.now(UTC) - 0.5 * H
    (running,) = await insert(
        cluster.engine, [Interval(user, "now@example.org", uuid.UUID(env["id"]), node, None, 2, started, None)]
    )
    asked_until = datetime.now(UTC) + 5 * H
    before = datetime.now(UTC)
    report = await cluster.call(
        "usage.report",
        {"since": (started - H).isoformat(), "until": asked_until.isoformat(), "user_id": str(user)},
    )
    after = datetime.now(UTC)
    until = datetime.fromisoformat(report["until"])
    assert before <= until <= after, "an `until` ahead of now is now"
    (item,) = report["items"]
    assert item["assignments"] == 1
    assert item["gpu_seconds"] == pytest.approx(2 * (until - started).total_seconds(), abs=1e-3)
    # A range entirely ahead of now has nothing in it.
    ahead = await cluster.call(
        "usage.report", {"since": (after + H).isoformat(), "until": asked_until.isoformat(), "user_id": str(user)}
    )
    assert ahead["items"] == []
    assert running.end is None


@pytest.mark.parametrize(
    ("since", "until", "extra"),
    [
        ("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", {}),  # from after until
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", {}),  # empty range
        ("2024-01-01T00:00:00Z", "2026-01-01T00:00:00Z", {}),  # longer than 400 days
        ("2026-01-01T00:00:00", "2026-01-02T00:00:00Z", {}),  # naive
        ("yesterday", "2026-01-02T00:00:00Z", {}),
        ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", {"group_by": "team"}),
    ],
)
async def test_bad_ranges_are_refused(cluster: Cluster, since: str, until: str, extra: dict[str, Any]) -> None:
    error = await cluster.error("usage.report", {"since": since, "until": until, **extra})
    assert error.code == "invalid_request"
