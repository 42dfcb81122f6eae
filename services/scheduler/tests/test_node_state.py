"""Every Assignment says what its node's agent last reported for it (node_state, node_message), from
inventory's `assignment_state_reported` events: newest report wins, only the assignment's own node
counts, whichever of the two scheduler replicas applies them."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from gpulab_core.contracts import inventory as inv
from gpulab_core.contracts import scheduler as sch
from gpulab_core.events import Event
from gpulab_devstack.testing import wait_until

from .conftest import Cluster, publish

WAIT_S = 15


async def report(
    cluster: Cluster,
    assignment: dict[str, Any],
    state: inv.AppliedState,
    message: str | None = None,
    *,
    at: datetime | None = None,
    node_id: Any = None,
    access_port: int | None = None,
) -> Event:
    """What inventory emits when a node's outcome for the assignment changed."""
    data = inv.AssignmentStateReported(
        assignment_id=assignment["id"],
        node_id=node_id or assignment["node_id"],
        state=state,
        message=message,
        reported_at=at or datetime.now(UTC),
        access_port=access_port,
    )
    return await publish(cluster.nc, inv.ASSIGNMENT_STATE_REPORTED, data)


async def applied(cluster: Cluster, *events: Event) -> None:
    """Once the scheduler has applied (or skipped) every one of these events."""

    async def done() -> bool:
        async with cluster.engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT count(*) FROM scheduler.processed_events "
                    "WHERE consumer = 'scheduler-node-reports' AND event_id = ANY(:ids)"
                ),
                {"ids": [e.id for e in events]},
            )
            return bool(found.scalar_one() == len(events))

    await wait_until(done, timeout_s=WAIT_S)


async def state_of(cluster: Cluster, assignment: dict[str, Any]) -> tuple[str, str | None]:
    got = await cluster.call("assignments.get", {"id": assignment["id"]})
    return got["node_state"], got["node_message"]


async def assignment(cluster: Cluster, **env_fields: Any) -> dict[str, Any]:
    node = await cluster.node(2)
    env = await cluster.environment([node], **env_fields)
    made: dict[str, Any] = await cluster.assign(await cluster.user(), env)
    return made


async def test_node_state_is_pending_then_what_the_node_reported_in_every_reply(cluster: Cluster) -> None:
    made = await assignment(cluster)
    assert (made["node_state"], made["node_message"]) == ("pending", None)

    await applied(cluster, await report(cluster, made, "applied"))
    assert await state_of(cluster, made) == ("applied", None)

    await applied(cluster, await report(cluster, made, "failed", "Useradd failed: exit status 9."))
    assert await state_of(cluster, made) == ("failed", "Useradd failed: exit status 9.")
    mine = await cluster.call("assignments.get_mine", {"id": made["id"], "user_id": made["user_id"]})
    listed = await cluster.call("assignments.list", {"user_id": made["user_id"]})
    for reply in (mine, *listed["items"]):
        assert (reply["node_state"], reply["node_message"]) == ("failed", "Useradd failed: exit status 9.")

    # Applied again: the message goes with the failure (even if a producer sent one along).
    await applied(cluster, await report(cluster, made, "applied", "ignored"))
    assert await state_of(cluster, made) == ("applied", None)

    # Revoked: the node removes the access; the assignment keeps what the node last reported while it
    # was in force, and its status says it ended.
    revoked = await cluster.call("assignments.revoke", {"id": made["id"]})
    assert revoked["node_state"] == "applied"
    await applied(cluster, await report(cluster, made, "removed"))
    again = await cluster.call("assignments.get", {"id": made["id"]})
    assert (again["status"], again["node_state"], again["node_message"]) == ("revoked", "applied", None)


async def test_an_older_report_never_overwrites_a_newer_one(cluster: Cluster) -> None:
    made = await assignment(cluster)
    now = datetime.now(UTC)
    await applied(cluster, await report(cluster, made, "failed", "Enforcement failed.", at=now))
    await applied(cluster, await report(cluster, made, "applied", at=now - timedelta(seconds=5)))
    await applied(cluster, await report(cluster, made, "applied", at=now))  # the same time: not newer
    assert await state_of(cluster, made) == ("failed", "Enforcement failed.")


async def test_a_report_from_another_node_changes_nothing(cluster: Cluster) -> None:
    made = await assignment(cluster)
    other = await cluster.node(1)
    await applied(cluster, await report(cluster, made, "failed", "not my assignment", node_id=other))
    assert await state_of(cluster, made) == ("pending", None)
    # A report about an assignment the scheduler never made is skipped too.
    stray = {"id": str(uuid.uuid4()), "node_id": made["node_id"]}
    await applied(cluster, await report(cluster, stray, "applied"))


async def test_two_replicas_applying_shuffled_reports_keep_the_newest(cluster: Cluster) -> None:
    made = await assignment(cluster)
    start = datetime.now(UTC)
    times = [start + timedelta(milliseconds=10 * i) for i in range(30)]
    newest = max(times)
    random.shuffle(times)
    sent = await asyncio.gather(
        *(
            report(cluster, made, "failed", f"attempt at {t.isoformat()}", at=t)
            if t != newest
            else report(cluster, made, "applied", at=t)
            for t in times
        )
    )
    await applied(cluster, *sent)
    assert await state_of(cluster, made) == ("applied", None)


async def test_admins_hear_of_a_failure_once_not_at_every_report_of_it(cluster: Cluster) -> None:
    """`scheduler.assignment_failed` (which notify mails to the admins) when the node's state turns to
    `failed`; a later report of the same failure (another message) emits nothing, a failure after an
    `applied` is a new one, and an assignment that ended is nobody's alarm."""
    made = await assignment(cluster)
    seen: list[dict[str, Any]] = []

    async def collect(msg: Any) -> None:
        event = Event.model_validate_json(msg.data)
        if event.data["assignment_id"] == made["id"]:
            seen.append(event.data)

    sub = await cluster.nc.subscribe(f"gpulab.events.{sch.ASSIGNMENT_FAILED}", cb=collect)
    try:
        await applied(cluster, await report(cluster, made, "failed", "sshd could not be reloaded."))

        async def one() -> bool:
            return len(seen) == 1

        await wait_until(one, timeout_s=WAIT_S)
        failed = sch.AssignmentFailed.model_validate(seen[0])
        assert (failed.message, str(failed.node_id), failed.linux_username) == (
            "sshd could not be reloaded.",
            made["node_id"],
            made["linux_username"],
        )
        # The same failure, reported again with another sentence: no second alarm.
        await applied(cluster, await report(cluster, made, "failed", "sshd could not be reloaded (again)."))
        await applied(cluster, await report(cluster, made, "applied"))
        await applied(cluster, await report(cluster, made, "failed", "useradd failed."))

        async def two() -> bool:
            return len(seen) == 2

        await wait_until(two, timeout_s=WAIT_S)
        await cluster.call("assignments.revoke", {"id": made["id"]})
        await applied(cluster, await report(cluster, made, "applied"))
        await applied(cluster, await report(cluster, made, "failed", "after the end"))
        await asyncio.sleep(1)  # the relay publishes within milliseconds of a commit
        assert [e["message"] for e in seen] == ["sshd could not be reloaded.", "useradd failed."]
    finally:
        await sub.unsubscribe()


async def port_of(cluster: Cluster, assignment: dict[str, Any]) -> int | None:
    async with cluster.engine.connect() as conn:
        found = await conn.execute(
            text("SELECT node_access_port FROM scheduler.assignments WHERE id = :id"), {"id": assignment["id"]}
        )
        port: int | None = found.scalar_one()
        return port


async def test_a_container_assignments_access_waits_for_its_port_then_names_it(cluster: Cluster) -> None:
    """Container mode: no SSH config until the node reported the port of the assignment's container
    (`access_not_ready`, saying why), then a config that logs in as root on that port through the node;
    the port goes with a failure and a later `applied` brings the new one."""
    made = await assignment(cluster, enforcement_mode="container")
    mine = {"id": made["id"], "user_id": made["user_id"]}

    refused = await cluster.error("assignments.access", mine)
    assert refused.code == sch.ACCESS_NOT_READY
    assert "has not reported the SSH port" in refused.message
    # Applied without a port (an agent from before access_port, a Proxmox node): still not ready.
    await applied(cluster, await report(cluster, made, "applied"))
    refused = await cluster.error("assignments.access", mine)
    assert refused.code == sch.ACCESS_NOT_READY
    assert "reported no SSH port for its container" in refused.message

    await applied(cluster, await report(cluster, made, "applied", access_port=32768))
    access = await cluster.call("assignments.access", mine)
    assert "    HostName 127.0.0.1\n    Port 32768\n    User root\n" in access["ssh_config"]
    assert f"-p 32768 -o HostKeyAlias=gpulab-{made['node_hostname']} root@127.0.0.1" in access["ssh_command"]

    await applied(cluster, await report(cluster, made, "failed", "Container enforcement: start failed."))
    assert await port_of(cluster, made) is None
    refused = await cluster.error("assignments.access", mine)
    assert (refused.code, refused.message) == (
        sch.ACCESS_NOT_READY,
        "access is not ready: the node could not set it up: Container enforcement: start failed.",
    )
    await applied(cluster, await report(cluster, made, "applied", access_port=32769))
    assert "    Port 32769\n" in (await cluster.call("assignments.access", mine))["ssh_config"]


async def test_a_soft_assignments_access_does_not_wait_for_a_port(cluster: Cluster) -> None:
    made = await assignment(cluster)
    access = await cluster.call("assignments.access", {"id": made["id"], "user_id": made["user_id"]})
    assert "    User " + made["linux_username"] + "\n" in access["ssh_config"]


async def test_an_access_port_that_is_not_a_tcp_port_is_ignored_at_the_edges(cluster: Cluster) -> None:
    """1..65535 is kept; 0 and 65536 are none (logged), whatever a producer sends."""
    made = await assignment(cluster, enforcement_mode="container")
    base = datetime.now(UTC)
    for i, (sent, kept) in enumerate([(65535, 65535), (65536, None), (1, 1), (0, None)]):
        await applied(cluster, await report(cluster, made, "applied", access_port=sent, at=base + timedelta(seconds=i)))
        assert await port_of(cluster, made) == kept, sent
