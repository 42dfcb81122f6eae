"""The rules that fit a node's assignments to one heartbeat reply (desired/fitting.py), at their edges."""

from __future__ import annotations

import uuid

from gpulab.agent.v1 import assignment_pb2
from gpulab.agent.v1 import heartbeat_pb2 as pb

from gpulab_inventory.desired import fitting

LIMIT = 10_000
BUDGET = LIMIT - fitting.REPLY_RESERVE_BYTES


def test_assignments_of_exactly_the_budget_all_fit() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    plan = fitting.fit({a: BUDGET - 100, b: 100}, LIMIT)
    assert plan == fitting.Fit(frozenset(), BUDGET, BUDGET)


def test_one_byte_over_leaves_out_the_largest_only() -> None:
    small, large, middle = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    plan = fitting.fit({small: 100, large: BUDGET - 200, middle: 101}, LIMIT)
    assert plan.withheld == {large}
    assert plan.total == BUDGET + 1


def test_the_largest_go_first_until_the_rest_fit_and_ties_go_by_id() -> None:
    ids = sorted((uuid.uuid4() for _ in range(3)), key=str)
    plan = fitting.fit(dict.fromkeys(ids, BUDGET // 2 + 1), LIMIT)
    assert plan.withheld == set(ids[1:])  # two of three would not fit; the lowest id stays


def test_an_assignment_larger_than_any_reply_is_left_out_alone() -> None:
    huge, other = uuid.uuid4(), uuid.uuid4()
    assert fitting.fit({huge: LIMIT * 3, other: 50}, LIMIT).withheld == {huge}


def test_reply_size_is_what_each_assignment_adds_to_the_real_reply() -> None:
    assignments = [
        assignment_pb2.Assignment(assignment_id=str(uuid.uuid4()), linux_username="gl_ada", ssh_public_keys=["k" * n])
        for n in (0, 100, 20_000, 200_000)
    ]
    reply = pb.HeartbeatResponse(assignments=assignments, heartbeat_interval_s=2**31 - 1)
    overhead = pb.HeartbeatResponse(heartbeat_interval_s=2**31 - 1).ByteSize()
    assert reply.ByteSize() == overhead + sum(fitting.reply_size(a) for a in assignments)
    assert overhead <= fitting.REPLY_RESERVE_BYTES
